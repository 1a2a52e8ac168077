"""Benchmarks behind the figures of docs/performance.md: `python -m benchmarks.NAME --help`."""
