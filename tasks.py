"""Invoke entry point: `invoke --list`. The tasks live in toolkit/cli.py so that the installed
`fromscratch` command runs the very same collection outside this checkout; this checkout adds `bench`."""

import os
import sys

from invoke import Collection

from bench.tasks import bench, corpus
from toolkit import command
from toolkit.cli import ns as toolkit_ns

# hints name the command the user typed: `invoke` (or `inv`) here, `fromscratch` everywhere else
command.use("inv" if os.path.basename(sys.argv[0]) == "inv" else "invoke")

ns = Collection(*toolkit_ns.tasks.values(), bench, corpus)
ns.configure(toolkit_ns.configuration())

__all__ = ["ns"]
