"""What a connection to a registry trusts, as docker decides it: the system's CAs plus the registry's own from
/etc/docker/certs.d/<host:port>/, and a client certificate found there; image/registry.py talks through it."""

from __future__ import annotations

import hashlib
import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..files import atomic_output

# Where dockerd reads a registry's own CA and client certificate (the docker CLI and this tool read it too).
CERTS_D = Path("/etc/docker/certs.d")


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


def session(tls: Trust, limit: float, login_host: str | None = None) -> Any:
    """A net.Session (time and size limits, the login only for login_host) with this registry's TLS trust."""
    from .. import net

    made = net.Session(limit, [login_host] if login_host else [])
    made.verify = tls.verify
    made.cert = tls.cert
    return made
