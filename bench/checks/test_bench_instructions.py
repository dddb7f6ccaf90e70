"""The instruction-count bench: callgrind's counts of two runs give a per-stream figure that is
the work of the streams alone (start-up and warm-up cancel out), and the report reads them."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.instructions import Count, count_once, render
from bench.targets import start_mock


@pytest.mark.tools  # valgrind
def test_the_mock_costs_a_steady_count_per_stream(tmp_path: Path) -> None:
    """Differences over different stream counts give a per-stream count: the work of the streams,
    start-up and warm-up cancelled out, growing with the streams."""
    mock = start_mock(tmp_path)
    assert mock.ok, mock.error
    try:
        origin = mock.base_url.removesuffix("/v1")
        low, mid, high = (count_once("mock", n, 4, origin, tmp_path, {}) for n in (10, 40, 70))
    finally:
        mock.stop()
    short, long = Count("mock", 10, 40, low, mid), Count("mock", 10, 70, low, high)
    assert low < mid < high  # more streams, more instructions
    for count in (short, long):
        assert 50_000 < count.per_stream < 5_000_000  # a Python server's stream: not zero, not start-up


def test_the_report_gives_each_target_against_the_mock() -> None:
    counts = [Count("mock", 100, 300, 10_000_000, 90_000_000), Count("sluicegate", 100, 300, 4_000_000_000, 4_500_000_000)]
    meta = {"date": "d", "commit": "c", "command": "python -m bench.instructions", "streams_low": 100,
            "streams_high": 300, "concurrency": 10}  # fmt: skip
    text = render(counts, meta)
    assert "| mock | 0.400 | 1.00 |" in text
    assert "| sluicegate | 2.500 | 6.25 |" in text


@pytest.mark.tools  # strace
def test_the_mock_writes_a_steady_number_of_calls_per_stream(tmp_path: Path) -> None:
    mock = start_mock(tmp_path)
    assert mock.ok, mock.error
    try:
        origin = mock.base_url.removesuffix("/v1")
        low, high = (count_once("mock", n, 4, origin, tmp_path, {}, "writes") for n in (10, 40))
    finally:
        mock.stop()
    per_stream = Count("mock", 10, 40, low, high).per_stream
    assert 1 <= per_stream < 60  # its status and events (one write each at most), no start-up writes
