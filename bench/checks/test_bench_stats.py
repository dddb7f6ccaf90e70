"""Percentile maths, completed-rate accounting and the max-rate search, against known values."""

from __future__ import annotations

import math

import pytest

from bench import stats
from bench.scenarios import RateSearch


def test_percentile_matches_numpy_linear_method() -> None:
    values = list(range(1, 101))  # 1..100
    assert stats.percentile(values, 50) == pytest.approx(50.5)
    assert stats.percentile(values, 99) == pytest.approx(99.01)
    assert stats.percentile(values, 90) == pytest.approx(90.1)
    assert stats.percentile(values, 0) == 1
    assert stats.percentile(values, 100) == 100


def test_percentile_small_and_unsorted() -> None:
    assert stats.percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert stats.percentile([10.0, 20.0], 25) == pytest.approx(12.5)
    assert stats.percentile([7.0], 99) == 7.0


def test_percentile_empty_is_nan_and_range_checked() -> None:
    assert math.isnan(stats.percentile([], 50))
    with pytest.raises(ValueError):
        stats.percentile([1.0], 101)


def test_summarize_converts_seconds_to_ms() -> None:
    summary = stats.summarize_ms([0.001, 0.002, 0.003, 0.004])
    assert summary["p50"] == pytest.approx(2.5)
    assert summary["max"] == pytest.approx(4.0)
    assert summary["mean"] == pytest.approx(2.5)
    assert math.isnan(stats.summarize_ms([])["p99"])


def test_added_latency_is_nan_safe() -> None:
    assert stats.added(12.0, 10.0) == 2.0
    assert math.isnan(stats.added(math.nan, 10.0))


def test_completed_rate_penalises_a_stretched_tail() -> None:
    # 100 completions spread over the 10 s window: 10/s.
    assert stats.completed_rate(100, 10.0, 1.0, 10.9) == pytest.approx(10.0)
    # Same 100 completions stretched over 20 s because the target queued them: 5/s.
    assert stats.completed_rate(100, 10.0, 1.0, 21.0) == pytest.approx(5.0)
    assert stats.completed_rate(0, 10.0, None, None) == 0.0


def test_rate_search_doubles_then_bisects() -> None:
    capacity = 1000.0
    search = RateSearch(start=100, cap=12800, max_probes=20, precision=0.15)
    probed = []
    while not search.done:
        rate = search.next_rate
        assert rate is not None
        probed.append(rate)
        search.record(rate, rate <= capacity)
    assert probed[:5] == [100, 200, 400, 800, 1600]
    assert 800 <= search.result <= capacity
    assert search.result >= 0.85 * capacity


def test_rate_search_is_bounded_and_handles_no_pass() -> None:
    search = RateSearch(start=200, cap=12800, max_probes=3)
    while not search.done:
        assert search.next_rate is not None
        search.record(search.next_rate, False)
    assert search.probes <= 3
    assert search.result == 0.0


def test_rate_search_stops_at_cap() -> None:
    search = RateSearch(start=1000, cap=3000, max_probes=10)
    probed = []
    while not search.done:
        assert search.next_rate is not None
        probed.append(search.next_rate)
        search.record(search.next_rate, True)
    assert probed == [1000, 2000, 3000]
    assert search.result == 3000
