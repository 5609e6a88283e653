"""Invoke entry point: `invoke --list`. The tasks live in toolkit/cli.py so that the installed
`fromscratch` command runs the very same collection outside this checkout."""

from toolkit.cli import ns

__all__ = ["ns"]
