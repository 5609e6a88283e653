"""Pushing an image to a registry: blobs, then each platform's manifest by digest, then the tag; and reading one
back (verify-image --remote).

The HTTP side is python-dxf's (a maintained Docker registry v2 client that streams blob uploads, sends manifest
bytes unchanged with their own media type, and speaks Basic and bearer-token authentication). Logins are found as
the docker CLI finds them, through the Docker SDK's auth and credential-store support; TLS trusts what docker
trusts. Registry errors are translated into ours here and only here.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import ssl
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import targets
from ..engine import endpoint as endpoints
from ..errors import InputError, ToolkitError
from ..files import atomic_output
from . import oci

log = logging.getLogger(__name__)

DOCKER_HUB = "registry-1.docker.io"
_LOOPBACK = ("localhost", "127.", "[::1]")
# Where dockerd reads a registry's own CA and client certificate (the docker CLI and this tool read it too).
CERTS_D = Path("/etc/docker/certs.d")


class RegistryError(ToolkitError):
    """The registry could not be reached, or refused a request."""


class CredentialsError(ToolkitError):
    """The login for a registry cannot be read: a credential helper missing, failing or answering nonsense."""

    exit_code = 2


@dataclass(frozen=True)
class Reference:
    registry: str  # host[:port]
    repository: str
    tag: str

    def __str__(self) -> str:
        return f"{self.registry}/{self.repository}:{self.tag}"

    @property
    def loopback(self) -> bool:
        return self.registry.startswith(_LOOPBACK)


def parse_reference(text: str) -> Reference:
    """REGISTRY/NAME[:TAG] as docker reads it: a first part with '.' or ':' (or localhost) names the registry."""
    text = text.strip()
    if "@" in text:
        raise InputError(f"--tag {text!r}: push by digest is not supported", hint="give REGISTRY/NAME[:TAG]")
    first, _, rest = text.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        registry, path = first, rest
    else:
        registry, path = DOCKER_HUB, text if "/" in text else f"library/{text}"
    last = path.rsplit("/", 1)[-1]
    name, tag = (path.rsplit(":", 1) if ":" in last else (path, "latest"))
    if not name or not tag:
        raise InputError(f"--tag {text!r} is not REGISTRY/NAME[:TAG]", hint="e.g. localhost:5000/hello:1.0")
    return Reference(registry, name, tag)


# --- the login, as `docker login` left it ---------------------------------------------------------------------

@dataclass(frozen=True)
class Login:
    username: str = ""
    password: str = field(default="", repr=False)
    identity_token: str = field(default="", repr=False)  # an OAuth2 refresh token, for the registry's token server
    source: str = ""  # where it came from, for messages: "docker-credential-pass", "auths in ~/.docker/config.json"


def find_login(registry: str, environ: Mapping[str, str] | None = None) -> Login | None:
    """The login the docker CLI would send to registry: its credHelpers entry, else credsStore, else the auths
    entry of config.json (a password or an identity token); None when there is none."""
    from docker import auth
    from docker.errors import DockerException

    cfg = endpoints.config(environ)
    path = endpoints.config_dir(environ) / "config.json"
    key = auth.INDEX_NAME if registry == DOCKER_HUB else registry  # docker's own name for Docker Hub
    try:
        config = auth.AuthConfig.load_config(str(path), dict(cfg)) if cfg else auth.AuthConfig({})
    except DockerException as exc:
        raise InputError(f"the docker config {path} has an auths entry that cannot be read ({exc})",
                         hint=f"docker login {registry}") from None
    helper = config.get_credential_store(key)
    if helper and shutil.which(f"docker-credential-{helper}") is None:
        raise CredentialsError(f"the credential helper docker-credential-{helper} that {path} names for "
                               f"{registry} is not installed or not on PATH",
                               hint=f"install it and run docker login {registry}, or remove it from {path}")
    try:
        with warnings.catch_warnings():  # the SDK warns about a helper it cannot find; checked above, in one line
            warnings.simplefilter("ignore")
            found = config.resolve_authconfig(key)
    except DockerException as exc:  # the helper exited non-zero: its own words are in the message
        raise CredentialsError(f"the credential helper docker-credential-{helper} failed for {registry}: "
                               f"{_one_line(str(exc.__cause__ or exc))}", hint=f"docker login {registry}") from None
    except (ValueError, KeyError, TypeError, AttributeError):  # not the JSON the helper protocol promises
        raise CredentialsError(f"the credential helper docker-credential-{helper} answered for {registry} with "
                               "something that is not credentials", hint=f"docker login {registry}") from None
    if not found:
        return None
    source = f"docker-credential-{helper}" if helper and "ServerAddress" in found else f"auths in {path}"
    token = found.get("IdentityToken") or ""
    user = found.get("Username") or found.get("username") or ""
    password = found.get("Password") or found.get("password") or ""
    if not token and not (user and password):
        return None  # an empty auths entry: Docker Desktop's mark for a login kept in its store
    return Login(str(user), str(password), str(token), source)


# --- TLS, as docker does it ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Trust:
    verify: bool | str  # a CA bundle path (the system's CAs, plus the registry's own), or False for --insecure
    cert: tuple[str, str] | None = None  # a client certificate and its key


def trust(registry: str, insecure: bool = False, certs_d: Path = CERTS_D) -> Trust:
    """What a connection to registry trusts, read as dockerd reads certs.d/<host:port>/: *.crt are CAs added to
    the system's, a *.cert with the *.key of the same name is the client certificate."""
    folder = certs_d / registry
    cas: list[Path] = []
    cert: tuple[str, str] | None = None
    try:
        names = sorted(os.listdir(folder)) if folder.is_dir() else []
    except OSError as exc:
        raise InputError(f"cannot read {folder}: {exc.strerror}") from None
    for name in names:
        stem, ext = os.path.splitext(name)
        if ext == ".crt":
            cas.append(folder / name)
        elif ext == ".cert":
            if f"{stem}.key" not in names:
                raise InputError(f"{folder / name} has no {stem}.key beside it",
                                 hint="a client certificate needs its key; CA certificates end in .crt")
            cert = cert or (str(folder / name), str(folder / f"{stem}.key"))
        elif ext == ".key" and f"{stem}.cert" not in names:
            raise InputError(f"{folder / name} has no {stem}.cert beside it",
                             hint="a client key needs its certificate, named .cert")
    if insecure:
        return Trust(False, cert)
    system = _system_cas()
    if not cas:
        return Trust(system, cert)
    return Trust(_bundle(system, cas), cert)


def _system_cas() -> str:
    """The system's CA bundle, as docker on Linux trusts it (requests alone would use certifi's)."""
    cafile = ssl.get_default_verify_paths().cafile
    if cafile and os.path.isfile(cafile):
        return cafile
    import certifi

    return str(certifi.where())


def _bundle(system: str, cas: list[Path]) -> str:
    """One PEM file of the system's CAs and the registry's: requests takes one. Named by its content and kept
    in the cache, so it is written once and never half-written."""
    try:
        parts = [Path(system).read_bytes()] + [ca.read_bytes() for ca in cas]
    except OSError as exc:
        raise InputError(f"cannot read a CA certificate: {exc}") from None
    data = b"\n".join(p.rstrip(b"\n") for p in parts) + b"\n"
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fromscratch" / "ca-bundles"
    path = cache / f"{hashlib.sha256(data).hexdigest()[:32]}.pem"
    if not path.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        with atomic_output(path, 0o644) as tmp:
            tmp.write_bytes(data)
    return str(path)


def _scheme(ref: Reference, tls: Trust, insecure: bool) -> str:
    """https, or http where the registry does not speak TLS and plain HTTP is allowed (a loopback registry, or
    --insecure), as docker falls back for its insecure registries. A certificate that does not verify is an
    error, loopback or not."""
    import requests

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # urllib3's warning for --insecure's unverified HTTPS
            requests.get(f"https://{ref.registry}/v2/", verify=tls.verify, cert=tls.cert, timeout=30)
        return "https"
    except requests.exceptions.SSLError as exc:
        if _unverified(exc):
            raise RegistryError(f"{ref.registry}'s TLS certificate is not signed by a CA this machine trusts",
                                hint=f"put the registry's CA in {CERTS_D / ref.registry / 'ca.crt'}, as for docker"
                                ) from None
        if (ref.loopback or insecure) and _speaks_http(ref.registry):
            return "http"
        hint = (f"a registry that wants a client certificate gets the one in {CERTS_D / ref.registry}/ "
                "(client.cert and client.key)")
        if not (ref.loopback or insecure):
            hint += "; --insecure allows plain HTTP"
        raise RegistryError(f"TLS with {ref.registry} failed ({_one_line(_reason(exc))})", hint=hint) from None
    except requests.RequestException as exc:
        raise RegistryError(f"no registry answered at {ref.registry} ({type(exc).__name__})",
                            hint="is the registry running, and is the host:port right?") from None


def _speaks_http(registry: str) -> bool:
    """Whether plain HTTP gets a registry's answer there: a TLS server that refused our handshake (it wants a
    client certificate, say) answers plain HTTP with a 400 of its own, and is not one."""
    import requests

    try:
        answer = requests.get(f"http://{registry}/v2/", timeout=30)
    except requests.RequestException:
        return False
    return answer.status_code != 400


def _unverified(exc: BaseException) -> bool:
    """Whether a TLS failure was the certificate's: the ssl error sits a few wrappers down in requests' error."""
    seen: set[int] = set()
    todo: list[Any] = [exc]
    while todo:
        item = todo.pop()
        if id(item) in seen or not isinstance(item, BaseException):
            continue
        seen.add(id(item))
        if isinstance(item, ssl.SSLCertVerificationError):
            return True
        todo += [item.__cause__, item.__context__, getattr(item, "reason", None), *item.args]
    return "CERTIFICATE_VERIFY_FAILED" in str(exc)


def _reason(exc: BaseException) -> str:
    text = str(exc)
    return text.rsplit("(Caused by ", 1)[-1].rstrip(")") if "(Caused by " in text else text


# --- talking to the registry --------------------------------------------------------------------------------

@contextlib.contextmanager
def _talking(ref: Reference, what: str, login: Login | None) -> Iterator[None]:
    import requests
    from dxf.exceptions import DXFAuthInsecureError, DXFUnauthorizedError

    try:
        yield
    except DXFUnauthorizedError as exc:
        if login is None:
            raise RegistryError(f"{what}: {ref.registry} asks for a login and none is saved for it",
                                hint=f"docker login {ref.registry}") from exc
        who = "the identity token" if login.identity_token else f"the login of {login.username}"
        raise RegistryError(f"{what}: {ref.registry} refused {who} (from {login.source})",
                            hint=f"docker login {ref.registry}") from exc
    except DXFAuthInsecureError as exc:
        raise RegistryError(f"{what}: {ref.registry} asks for a login over plain HTTP, which would send it in the "
                            "clear", hint="serve the registry over HTTPS") from exc
    except requests.HTTPError as exc:
        status = exc.response.status_code if exc.response is not None else "?"
        body = (exc.response.text if exc.response is not None else "").strip().replace("\n", " ")[:200]
        raise RegistryError(f"{what}: {ref.registry} answered {status} {body}".rstrip()) from exc
    except requests.RequestException as exc:
        raise RegistryError(f"{what}: no registry answered at {ref.registry} ({type(exc).__name__})",
                            hint="is the registry running, and is the host:port right?") from exc


def client(ref: Reference, insecure: bool | None = None) -> Any:
    """A dxf.DXF for the repository, with docker's login and TLS trust for its registry. Plain HTTP only where
    the registry does not speak TLS and is on loopback (as docker allows) or insecure is given."""
    import requests
    from dxf import DXF

    insecure = bool(insecure)
    login = find_login(ref.registry)
    tls = trust(ref.registry, insecure)
    scheme = _scheme(ref, tls, insecure)
    log.info("registry %s over %s, login %s", ref.registry, scheme, login or "none")

    def auth(dxf: Any, response: Any) -> None:
        from dxf.exceptions import DXFUnauthorizedError

        if login is None:
            raise DXFUnauthorizedError()
        if login.identity_token:
            dxf.token = _refreshed_token(response, login.identity_token, tls)
        else:
            dxf.authenticate(login.username, login.password, response=response)

    class Session(DXF):
        """python-dxf with a client certificate: requests made inside `with` go through the session it opens
        there, and a session is the one place requests takes a default certificate from."""

        def __enter__(self) -> Any:
            entered = super().__enter__()
            if isinstance(session := self._sessions[0], requests.Session):
                session.cert = tls.cert
            return entered

    dxf = Session(ref.registry, ref.repository, auth=auth, insecure=scheme == "http", tlsverify=tls.verify,
                  timeout=300)
    dxf.login = login  # type: ignore[attr-defined]  # for push's messages: whose login a refusal refused
    return dxf


def _refreshed_token(response: Any, identity_token: str, tls: Trust) -> str:
    """Trade an identity token (what `docker login` keeps for registries with an OAuth2 token server) for an
    access token, as the docker CLI does: POST grant_type=refresh_token to the realm of the bearer challenge."""
    import requests
    import www_authenticate
    from dxf.exceptions import DXFUnauthorizedError

    challenge = www_authenticate.parse(response.headers.get("www-authenticate", "")).get("bearer")
    if not challenge or "realm" not in challenge:
        raise DXFUnauthorizedError()  # a registry without a token server cannot take an identity token
    form = {"grant_type": "refresh_token", "refresh_token": identity_token, "client_id": "fromscratch",
            "service": challenge.get("service", ""), "scope": challenge.get("scope", "")}
    answer = requests.post(challenge["realm"], data=form, verify=tls.verify, cert=tls.cert, timeout=60)
    if answer.status_code in (400, 401, 403):
        raise DXFUnauthorizedError()
    answer.raise_for_status()
    try:
        body = answer.json()
        return str(body.get("access_token") or body["token"])
    except (ValueError, KeyError, AttributeError):
        raise DXFUnauthorizedError() from None


def push(images: list[oci.Image], ref: Reference, dxf: Any | None = None) -> oci.Descriptor:
    """Push every blob, each platform's manifest (by digest) and then the tag; returns what the tag names."""
    dxf = dxf or client(ref)
    login = getattr(dxf, "login", None)
    with dxf:  # one HTTP session for the whole push: kept-alive connections, and the client certificate
        for desc, source in oci.blobs(images):
            if desc.media_type in (oci.MEDIA_MANIFEST, oci.MEDIA_INDEX):
                continue
            with _talking(ref, f"uploading blob {desc.digest[:19]}", login):
                dxf.push_blob(data=oci.blob_chunks(source, desc.size), digest=desc.digest)
            log.info("pushed blob %s (%d bytes)", desc.digest, desc.size)
        if len(images) == 1:
            top, data = images[0].manifest_desc, images[0].manifest
        else:
            for image in images:
                with _talking(ref, f"uploading the {image.platform} manifest", login):
                    dxf.set_manifest(image.manifest_desc.digest, image.manifest.decode())
            data, top = oci.image_index(images)
        with _talking(ref, f"tagging {ref}", login):
            dxf.set_manifest(ref.tag, data.decode())
    return top


def _one_line(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= 300 else text[:297] + "..."


def talking(ref: Reference, what: str, login: Login | None) -> contextlib.AbstractContextManager[None]:
    """The same translation of registry errors, for modules that push or read more through a client made here
    (referrers.py: SBOMs)."""
    return _talking(ref, what, login)


# --- reading an image back, for verify-image --remote --------------------------------------------------------

_CONFIG_MAX = 4 << 20  # an image config is a few KiB; a bigger one is refused before it is read


@dataclass(frozen=True)
class Pulled:
    """One platform's image from a registry: its OCI config, parsed, and its layer files on disk, bottom first."""

    platform: str
    config: dict
    layers: tuple[Path, ...]


def pull(ref: Reference, dxf: Any, platform: targets.Target | None, workdir: Path) -> list[Pulled]:
    """ref's image for platform, from its registry; without a platform, each platform of an index. Every blob is
    checked against its digest (python-dxf does, as it streams) and layers go to files in workdir, not memory."""
    import requests

    login = getattr(dxf, "login", None)
    with dxf:
        with _talking(ref, f"reading {ref}", login):
            try:
                body, _ = dxf.get_manifest_and_response(ref.tag)
            except requests.HTTPError as exc:
                if exc.response is not None and exc.response.status_code == 404:
                    raise InputError(f"no image {ref} in its registry",
                                     hint=f"check the name; push it with invoke push --tag {ref}") from None
                raise
        top = _json(body, ref)
        if "manifests" in top:  # an index (OCI, or Docker's manifest list)
            wanted = [d for d in top["manifests"] if isinstance(d, dict) and not d.get("artifactType")
                      and (found := _target(d.get("platform") or {})) is not None
                      and (platform is None or found == platform)]
            if not wanted:
                listed = ", ".join(p for d in top["manifests"] if isinstance(d, dict)
                                   if (p := _platform(d.get("platform") or {})) and _target(d["platform"]))
                raise InputError(f"{ref} has no image for {platform.platform if platform else 'any platform'} "
                                 f"in its registry (its index lists {listed or 'none this tool knows'})",
                                 hint=f"pick one with --platform {listed.split(', ')[0]}" if listed else None)
            manifests = []
            for desc in wanted:
                with _talking(ref, f"reading the {_platform(desc['platform'])} manifest", login):
                    text, _ = dxf.get_manifest_and_response(desc["digest"])
                if "sha256:" + hashlib.sha256(text.encode()).hexdigest() != desc["digest"]:
                    raise RegistryError(f"{ref.registry} answered {desc['digest']} with other bytes")
                manifests.append(_json(text, ref))
        else:
            manifests = [top]
        out = [_pull_one(ref, dxf, manifest, workdir / str(i), login) for i, manifest in enumerate(manifests)]
    if platform is not None and len(out) == 1 and _target(out[0].config) != platform:
        raise InputError(f"{ref} in its registry is for {out[0].platform}, not {platform.platform}",
                         hint="leave out --platform, or give the image of that platform")
    return out


def _pull_one(ref: Reference, dxf: Any, manifest: dict, where: Path, login: Any) -> Pulled:
    from dxf.exceptions import DXFDigestMismatchError

    try:
        config_desc, layer_descs = manifest["config"], manifest["layers"]
        if int(config_desc.get("size", 0)) > _CONFIG_MAX:
            raise RegistryError(f"{ref}: its config is {config_desc['size']:,} bytes, more than an image config "
                                "holds")
        where.mkdir(parents=True)
        with _talking(ref, f"reading the config {config_desc['digest'][:19]}", login):
            config = json.loads(b"".join(dxf.pull_blob(config_desc["digest"])))
        layers = []
        for i, desc in enumerate(layer_descs):
            path = where / f"layer{i}"
            with _talking(ref, f"reading the layer {desc['digest'][:19]}", login), open(path, "wb") as fh:
                for chunk in dxf.pull_blob(desc["digest"], chunk_size=1 << 20):
                    fh.write(chunk)
            layers.append(path)
    except DXFDigestMismatchError as exc:
        raise RegistryError(f"{ref.registry} answered a blob of {ref} with other bytes ({exc})") from None
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise RegistryError(f"{ref}: its manifest or config is not an image's ({exc!r})") from None
    if not isinstance(config, dict):
        raise RegistryError(f"{ref}: its config is not a JSON object")
    return Pulled(_platform(config), config, tuple(layers))


def _json(text: str, ref: Reference) -> dict:
    try:
        found = json.loads(text)
    except ValueError:
        raise RegistryError(f"{ref}: the registry's manifest is not JSON") from None
    if not isinstance(found, dict):
        raise RegistryError(f"{ref}: the registry's manifest is not a JSON object")
    return found


def _platform(plat: Mapping[str, Any]) -> str:
    return "/".join(str(plat[k]) for k in ("os", "architecture", "variant") if plat.get(k))


def _target(plat: Mapping[str, Any]) -> targets.Target | None:
    """The target of a platform (an index entry's, or a config's os/architecture/variant); None for others
    (an attestation manifest's unknown/unknown)."""
    try:
        return targets.parse_platform(_platform(plat))
    except InputError:
        return None
