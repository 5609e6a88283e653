"""The login `docker login` left for a registry (config.json's auths, a credential helper), found as the docker
CLI finds it, through the Docker SDK's auth support; the SDK's errors are translated into ours here. Pushing and
reading an image back (image/registry.py) send it."""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..errors import InputError, ToolkitError
from . import endpoint

DOCKER_HUB = "registry-1.docker.io"  # where a name without a registry host goes, as docker reads it


class CredentialsError(ToolkitError):
    """The login for a registry cannot be read: a credential helper missing, failing or answering nonsense."""

    exit_code = 2


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

    cfg = endpoint.config(environ)
    path = endpoint.config_dir(environ) / "config.json"
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


def _one_line(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= 300 else text[:297] + "..."
