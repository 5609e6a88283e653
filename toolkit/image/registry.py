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
import urllib.parse
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import command, targets
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


def _session(tls: Trust, limit: float, login_host: str | None = None) -> Any:
    """A net.Session (time and size limits, the login only for login_host) with this registry's TLS trust."""
    from .. import net

    session = net.Session(limit, [login_host] if login_host else [])
    session.verify = tls.verify
    session.cert = tls.cert
    return session


def _scheme(ref: Reference, tls: Trust, insecure: bool, limit: float) -> str:
    """https, or http where the registry does not speak TLS and plain HTTP is allowed (a loopback registry, or
    --insecure), as docker falls back for its insecure registries. A certificate that does not verify is an
    error, loopback or not."""
    import requests

    from .. import net

    try:
        with warnings.catch_warnings(), _session(tls, limit) as session:
            warnings.simplefilter("ignore")  # urllib3's warning for --insecure's unverified HTTPS
            session.get(f"https://{ref.registry}/v2/").close()
        return "https"
    except requests.exceptions.SSLError as exc:
        if _unverified(exc):
            raise RegistryError(f"{ref.registry}'s TLS certificate is not signed by a CA this machine trusts",
                                hint=f"put the registry's CA in {CERTS_D / ref.registry / 'ca.crt'}, as for docker"
                                ) from None
        if (ref.loopback or insecure) and _speaks_http(ref.registry, limit):
            return "http"
        hint = (f"a registry that wants a client certificate gets the one in {CERTS_D / ref.registry}/ "
                "(client.cert and client.key)")
        if not (ref.loopback or insecure):
            hint += "; --insecure allows plain HTTP"
        raise RegistryError(f"TLS with {ref.registry} failed ({_one_line(_reason(exc))})", hint=hint) from None
    except requests.RequestException as exc:
        said = net.describe(exc, ref.registry, limit, "registry")
        raise RegistryError(f"asking https://{ref.registry}/v2/: {said}", hint=_hint(exc)) from None


def _hint(exc: BaseException) -> str | None:
    """What to check, for a registry that never answered (not for one that answered badly or too slowly)."""
    from .. import net

    return "is the registry running, and is the host:port right?" if net.unanswered(exc) else None


def _speaks_http(registry: str, limit: float) -> bool:
    """Whether plain HTTP gets a registry's answer there: a TLS server that refused our handshake (it wants a
    client certificate, say) answers plain HTTP with a 400 of its own, and is not one. A server that answers too
    slowly, too much or with a redirect that fails is an error of its own, not a TLS failure."""
    import requests

    from .. import net

    try:
        with _session(Trust(False), limit) as session:
            answer = session.get(f"http://{registry}/v2/")
            answer.close()
    except requests.RequestException as exc:
        if net.unanswered(exc):
            return False
        raise RegistryError(f"asking http://{registry}/v2/ (it does not speak TLS): "
                            f"{net.describe(exc, registry, limit, 'registry')}") from None
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
    from dxf.exceptions import DXFAuthInsecureError, DXFError, DXFUnauthorizedError

    from .. import net

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
        try:
            body = (exc.response.text if exc.response is not None else "").strip().replace("\n", " ")[:200]
        except requests.RequestException:  # an error page too big or too slow: its status says enough
            body = ""
        raise RegistryError(f"{what}: {ref.registry} answered {status} {body}".rstrip()) from exc
    except requests.RequestException as exc:
        said = net.describe(exc, ref.registry, net.timeout(), "registry")
        raise RegistryError(f"{what}: {said}", hint=_hint(exc)) from exc
    except (DXFError, ValueError, KeyError, IndexError, TypeError, AttributeError, RecursionError) as exc:
        # python-dxf reading an answer that is not what the registry API promises (a token answer that is not
        # an object with a token, a missing header): the registry's fault, said in one line
        raise RegistryError(f"{what}: {ref.registry} answered with something a registry does not send "
                            f"({type(exc).__name__})") from exc


def client(ref: Reference, insecure: bool | None = None) -> Any:
    """A dxf.DXF for the repository, with docker's login and TLS trust for its registry. Plain HTTP only where
    the registry does not speak TLS and is on loopback (as docker allows) or insecure is given.

    Every request goes through a net.Session: time and size limits, and the login sent to the registry's own
    host and to the token server its bearer challenge names (as the docker CLI does), never to another host,
    such as the one a blob upload's Location names."""
    import www_authenticate
    from dxf import DXF
    from dxf.exceptions import DXFUnauthorizedError

    from .. import net

    insecure = bool(insecure)
    limit = net.timeout()
    login = find_login(ref.registry)
    tls = trust(ref.registry, insecure)
    scheme = _scheme(ref, tls, insecure, limit)
    log.info("registry %s over %s, login %s", ref.registry, scheme, login or "none")
    home = net.host_key(ref.registry, scheme)

    def auth(dxf: Any, response: Any) -> None:
        asking = net.host_key(response.url or "", scheme)
        if asking != home:
            raise RegistryError(f"{asking[0]}:{asking[1]}, where {ref.registry} sent a request on, asks for a login; "
                                f"the login for {ref.registry} is sent to no other host")
        if login is None:
            raise DXFUnauthorizedError()
        challenge = www_authenticate.parse(response.headers.get("www-authenticate", "")).get("bearer") or {}
        realm = challenge.get("realm") if isinstance(challenge, dict) else None
        if isinstance(realm, str) and (realm_host := urllib.parse.urlsplit(realm).netloc):
            dxf._sessions[0].allow_login(realm_host)  # the token server the registry itself names, as docker
        if login.identity_token:
            dxf.token = _refreshed_token(response, login.identity_token, tls, dxf._sessions[0])
        else:
            dxf.authenticate(login.username, login.password, response=response)

    class Session(DXF):
        """python-dxf whose every request goes through one net.Session, opened by `with` (kept-alive
        connections, the client certificate, the limits); outside `with`, through a session of its own."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._sessions = [_session(tls, limit, ref.registry)]

        def __enter__(self) -> Any:
            session = _session(tls, limit, ref.registry)
            session.__enter__()
            self._sessions.insert(0, session)
            return self

    dxf = Session(ref.registry, ref.repository, auth=auth, insecure=scheme == "http", tlsverify=tls.verify,
                  timeout=limit)
    dxf.login = login  # type: ignore[attr-defined]  # for push's messages: whose login a refusal refused
    return dxf


def _refreshed_token(response: Any, identity_token: str, tls: Trust, session: Any = None) -> str:
    """Trade an identity token (what `docker login` keeps for registries with an OAuth2 token server) for an
    access token, as the docker CLI does: POST grant_type=refresh_token to the realm of the bearer challenge."""
    import www_authenticate
    from dxf.exceptions import DXFUnauthorizedError

    from .. import net

    challenge = www_authenticate.parse(response.headers.get("www-authenticate", "")).get("bearer")
    if not challenge or "realm" not in challenge:
        raise DXFUnauthorizedError()  # a registry without a token server cannot take an identity token
    form = {"grant_type": "refresh_token", "refresh_token": identity_token, "client_id": "fromscratch",
            "service": challenge.get("service", ""), "scope": challenge.get("scope", "")}
    session = session or _session(tls, net.timeout())
    answer = session.post(challenge["realm"], data=form)
    if answer.status_code in (400, 401, 403):
        raise DXFUnauthorizedError()
    answer.raise_for_status()
    try:
        body = answer.json()
        return str(body.get("access_token") or body["token"])
    except (ValueError, KeyError, AttributeError, RecursionError):
        raise DXFUnauthorizedError() from None


ACCEPT = ", ".join(("application/vnd.oci.image.manifest.v1+json", "application/vnd.oci.image.index.v1+json",
                    "application/vnd.docker.distribution.manifest.v2+json",
                    "application/vnd.docker.distribution.manifest.list.v2+json"))


def get_manifest(dxf: Any, ref: Reference, reference: str) -> tuple[dict[str, Any], bytes, str]:
    """A manifest or index by tag or digest: (its JSON object, its bytes, their digest). The body is read within
    the session's limits (net.MAX_ANSWER: 4 MiB, as the distribution spec suggests for manifests), and must be
    the bytes its digest names: the one asked for, and the Docker-Content-Digest the registry sends."""
    from .. import net

    what = f"the manifest {reference[:19]}" if reference.startswith("sha256:") else f"the tag {reference}"
    login = getattr(dxf, "login", None)
    with _talking(ref, f"reading {what}", login):
        answer = dxf._request("get", f"manifests/{reference}", headers={"Accept": ACCEPT}, stream=True)
        data = net.body(answer)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    claimed = answer.headers.get("Docker-Content-Digest", "")
    if reference.startswith("sha256:") and digest != reference:
        raise RegistryError(f"{ref.registry} answered {what} with other bytes (their digest is {digest})")
    if claimed and claimed != digest:
        raise RegistryError(f"{ref.registry} answered {what} with bytes whose digest, {digest}, is not the "
                            f"{_one_line(claimed)[:80]} its Docker-Content-Digest says")
    return oci.json_object(data, f"{ref.registry}'s answer for {what}"), data, digest


def pull_blob(dxf: Any, ref: Reference, desc: oci.Descriptor, limit: int) -> bytes:
    """A small blob (an SBOM: at most limit bytes), its digest checked as it arrives: no more than the size the
    descriptor gives is read, and bytes that are not the digest's are an error, never returned."""
    from .. import net

    if desc.size > limit:
        raise RegistryError(f"{ref.registry} lists a blob {desc.digest[:19]} of {desc.size:,} bytes, over the "
                            f"{limit >> 20} MiB such a blob may be")
    login = getattr(dxf, "login", None)
    hasher, parts, seen = hashlib.sha256(), [], 0
    with _talking(ref, f"reading the blob {desc.digest[:19]}", login):
        answer = dxf._request("get", f"blobs/{desc.digest}", stream=True)
        for chunk in net.read_body(answer):
            seen += len(chunk)
            if seen > desc.size:
                answer.close()
                raise RegistryError(f"{ref.registry} sent more than the {desc.size:,} bytes of the blob "
                                    f"{desc.digest[:19]}")
            hasher.update(chunk)
            parts.append(chunk)
    if "sha256:" + hasher.hexdigest() != desc.digest:
        raise RegistryError(f"{ref.registry} answered the blob {desc.digest[:19]} with bytes of another digest "
                            f"(sha256:{hasher.hexdigest()[:12]})")
    return b"".join(parts)


def push(images: list[oci.Image], ref: Reference, dxf: Any | None = None) -> oci.Descriptor:
    """Push every blob, each platform's manifest (by digest), the top manifest by digest, and then the tag."""
    dxf = dxf or client(ref)
    with dxf:
        top, data = push_content(images, ref, dxf)
        set_tag(ref, dxf, data)
    return top


def push_content(images: list[oci.Image], ref: Reference, dxf: Any) -> tuple[oci.Descriptor, bytes]:
    """Every blob, each platform's manifest and the top one (the index, or the one manifest), all by digest: the
    tag is not touched. Returns the top manifest's descriptor and bytes, for set_tag. Inside `with dxf`."""
    login = getattr(dxf, "login", None)
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
    with _talking(ref, f"uploading the manifest {top.digest[:19]}", login):
        dxf.set_manifest(top.digest, data.decode())
    return top, data


def set_tag(ref: Reference, dxf: Any, data: bytes) -> None:
    """Point the tag at the top manifest push_content sent. Inside `with dxf`."""
    with _talking(ref, f"tagging {ref}", getattr(dxf, "login", None)):
        dxf.set_manifest(ref.tag, data.decode())


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
                                     hint=f"check the name; push it with {command.line(f'push --tag {ref}')}") from None
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
