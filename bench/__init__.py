"""Gatehouse benchmarks: `python -m bench --help`."""
