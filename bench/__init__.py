"""Benchmark suite for sluicegate: mock upstream, open-loop load generator and reports.

Run it with ``python -m bench`` from the repository root; see ``bench/__main__.py``.
"""
