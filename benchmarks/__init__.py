"""Benchmark scripts (run as files: ``python benchmarks/NAME.py``) and their helpers."""
