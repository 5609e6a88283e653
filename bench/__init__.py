"""Benchmarks beside the flow: each measures fromscratch and the tool a user would otherwise run, in the same run."""

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_BUILDER_BASE = "fromscratch/debian:bookworm"  # what scripts/dev makes with `invoke rootfs`
