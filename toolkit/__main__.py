"""`python -m toolkit` is the `fromscratch` command."""

from toolkit.cli import program

program.run()
