"""Invoke entry point: `invoke --list`. The tasks live in toolkit/cli.py so that the installed
`fromscratch` command runs the very same collection outside this checkout; this checkout adds `bench`."""

import os
import sys

from invoke import Collection

# Invoke writes no bytecode unless given --write-pyc: the toolkit's modules would be compiled anew on every run
# (~70 ms of a build-hello) until some other program wrote their __pycache__. Python's own -B or
# PYTHONDONTWRITEBYTECODE still keeps them unwritten.
if not sys.flags.dont_write_bytecode:
    sys.dont_write_bytecode = False

from bench.tasks import bench, corpus  # noqa: E402 (imported once bytecode may be written)
from toolkit import command  # noqa: E402
from toolkit.cli import ns as toolkit_ns  # noqa: E402

# hints name the command the user typed: `invoke` (or `inv`) here, `fromscratch` everywhere else
command.use("inv" if os.path.basename(sys.argv[0]) == "inv" else "invoke")

ns = Collection(*toolkit_ns.tasks.values(), bench, corpus)
ns.configure(toolkit_ns.configuration())

__all__ = ["ns"]
