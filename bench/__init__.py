"""Benchmarks: scripts run as `python bench/NAME.py`; a package only so mypy names them bench.NAME."""
