"""Talking to a registry: references as docker reads them, a python-dxf client with docker's login
(engine/login.py) and TLS trust (tls.py), and the pushes and reads of manifests and blobs; registry errors are
translated into ours here and only here. pulled.py reads an image back through it; referrers.py pushes SBOMs.

The HTTP side is python-dxf's (a maintained Docker registry v2 client that streams blob uploads, sends manifest
bytes unchanged with their own media type, and speaks Basic and bearer-token authentication).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import ssl
import urllib.parse
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..engine.login import DOCKER_HUB, Login, find_login
from ..errors import InputError, ToolkitError
from . import oci
from .tls import CERTS_D, Trust, trust
from .tls import session as tls_session

log = logging.getLogger(__name__)

_LOOPBACK = ("localhost", "127.", "[::1]")


class RegistryError(ToolkitError):
    """The registry could not be reached, or refused a request."""


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


def _scheme(ref: Reference, tls: Trust, insecure: bool, limit: float) -> str:
    """https, or http where the registry does not speak TLS and plain HTTP is allowed (a loopback registry, or
    --insecure), as docker falls back for its insecure registries. A certificate that does not verify is an
    error, loopback or not."""
    import requests

    from .. import net

    try:
        with warnings.catch_warnings(), tls_session(tls, limit) as session:
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
        with tls_session(Trust(False), limit) as session:
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
            self._sessions = [tls_session(tls, limit, ref.registry)]

        def __enter__(self) -> Any:
            session = tls_session(tls, limit, ref.registry)
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
    session = session or tls_session(tls, net.timeout())
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
    (referrers.py: SBOMs; pulled.py: an image read back)."""
    return _talking(ref, what, login)
