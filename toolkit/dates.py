"""Foundation: the one date reproducible outputs carry, SOURCE_DATE_EPOCH, and how images and SBOMs write it."""

from __future__ import annotations

import datetime
import os

from .errors import InputError

__all__ = ["rfc3339", "source_date_epoch"]


def source_date_epoch(default: int = 0) -> int:
    """SOURCE_DATE_EPOCH from the environment (the reproducible-builds convention), else default."""
    env = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not env:
        return default
    try:
        value = int(env)
    except ValueError:
        raise InputError(f"SOURCE_DATE_EPOCH={env!r} is not a whole number of seconds") from None
    if value < 0:
        raise InputError(f"SOURCE_DATE_EPOCH={env!r} is before 1970")
    return value


def rfc3339(epoch: int) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
