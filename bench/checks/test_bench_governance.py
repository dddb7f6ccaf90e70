"""bench.governance's report: the rate search's precision and the verdict's two rate figures."""

from __future__ import annotations

from typing import Any

from bench.governance import OFF, ON, render
from bench.scenarios import RateSearch

META = {"commit": "0" * 40, "dirty": False, "date": "d", "machine": "m", "workers": 2, "command": "c"}


def result(rate_on: float, cpu_on: float | None) -> dict[str, Any]:
    rounds = [{"ttfb_p50": 1.0, "total_p50": 1001.0, "success_pct": 100.0, "cpu_s_per_1k": 2.0}] * 3
    out: dict[str, Any] = {
        OFF: {"ttfb_p50_ms": 1.0, "total_p50_ms": 1001.0, "cpu_s_per_1k": 2.0},
        ON: {"ttfb_p50_ms": 1.2, "total_p50_ms": 1001.2, "cpu_s_per_1k": 2.2},
        "rounds": {OFF: rounds, ON: rounds},
        "added_ttfb_p50_ms": 0.2,
        "added_total_p50_ms": 0.2,
        "max_rate": {OFF: 2000.0, ON: rate_on},
        "lowest_fail": {OFF: 2100.0, ON: rate_on + 100},
        "rate_drop_pct": 100 * (2000.0 - rate_on) / 2000.0,
    }
    if cpu_on is not None:
        out["saturated_ms_per_stream"] = {OFF: 0.5, ON: cpu_on}
        out["capacity_drop_pct"] = 100 * (1 - 0.5 / cpu_on)
        out["saturated_streams_per_s"] = {OFF: 2000.0, ON: 2000.0 * 0.5 / cpu_on}
        out["throughput_drop_pct"] = 100 * (1 - 0.5 / cpu_on)
    else:
        out["saturated_error"] = "gov-on: errors {'timeout': 3}"
    return out


def verdict(table: str) -> str:
    row = next(line for line in table.splitlines() if line.startswith("| sqlite |"))
    return row.rstrip(" |").rsplit("|", 1)[1].strip()


def test_both_rate_figures_within_ten_percent_pass() -> None:
    assert verdict(render({"sqlite": result(1900.0, 0.54)}, META)) == "PASS"


def test_a_capacity_drop_over_ten_percent_misses_even_when_the_probes_pass() -> None:
    table = render({"sqlite": result(1900.0, 0.6)}, META)
    assert verdict(table) == "MISS"
    assert "0.500 / 0.600" in table and "16.7%" in table


def test_capacity_not_measured_is_said_and_misses() -> None:
    table = render({"sqlite": result(1900.0, None)}, META)
    assert "not measured (gov-on: errors" in table
    assert verdict(table) == "MISS"


def test_a_finer_search_keeps_bisecting_where_the_default_stops() -> None:
    def search(precision: float) -> RateSearch:
        s = RateSearch(200.0, 12800.0, 20, precision=precision)
        while s.next_rate is not None:
            s.record(s.next_rate, s.next_rate <= 2500.0)
        return s

    coarse, fine = search(0.15), search(0.05)
    assert coarse.lowest_fail is not None and fine.lowest_fail is not None
    assert coarse.lowest_fail - coarse.result > 0.05 * coarse.result  # 2400 -> 2800: one 15% step
    assert fine.lowest_fail - fine.result <= 0.05 * fine.result
    assert 2400.0 <= fine.result <= 2500.0


def test_probes_that_never_failed_do_not_hide_a_capacity_miss() -> None:
    r = result(2000.0, 0.6)
    r["lowest_fail"] = {OFF: None, ON: None}
    assert verdict(render({"sqlite": r}, META)) == "MISS"
    r = result(2000.0, 0.52)
    r["lowest_fail"] = {OFF: None, ON: None}
    assert verdict(render({"sqlite": r}, META)).startswith("rate not measured")


def test_a_throughput_drop_over_ten_percent_misses() -> None:
    """The database's own CPU is not in the gateway's: streams per second at saturation count it."""
    r = result(1900.0, 0.52)
    r["saturated_streams_per_s"] = {OFF: 2000.0, ON: 1700.0}
    r["throughput_drop_pct"] = 15.0
    table = render({"sqlite": r}, META)
    assert "2000 / 1700" in table and verdict(table) == "MISS"
