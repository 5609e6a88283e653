"""Benchmarks beside the flow: each measures fromscratch and the tool a user would otherwise run, in the same run."""
