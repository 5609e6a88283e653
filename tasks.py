"""Invoke entry point: `invoke --list`. The tasks live in toolkit/cli.py so that the installed
`fromscratch` command runs the very same collection outside this checkout; this checkout adds `bench`."""

from invoke import Collection

from bench.tasks import bench
from toolkit.cli import ns as toolkit_ns

ns = Collection(*toolkit_ns.tasks.values(), bench)
ns.configure(toolkit_ns.configuration())

__all__ = ["ns"]
