"""Honest verdicts: a figure the run could not measure is "not measured", never PASS (issue 11)."""

from __future__ import annotations

from typing import Any

import pytest

from bench.report import render_markdown
from bench.scenarios import RateSearch, RunRecord, build_scenarios
from bench.targets import Target
from bench.verdicts import RateBounds, Report, rate_bounds, ratio_verdict, targets_check, verdict_text


def _load(p50: float, p99: float, rps: float, ok: int = 100, scheduled: int = 100) -> dict[str, Any]:
    summary = {"p50": p50, "p90": p99, "p99": p99, "max": p99, "mean": p50}
    return {
        "offered_rps": rps,
        "completed_rps": rps * ok / scheduled,
        "success_pct": 100.0 * ok / scheduled,
        "ok": ok,
        "scheduled": scheduled,
        "ttfb_ms": summary,
        "total_ms": summary,
        "send_lag_ms": {"p99": 0.5},
        "generator_cpu_s": 0.1,
        "wall_s": 1.0,
        "errors": {},
    }


def _probes(target: str, *probes: tuple[float, bool]) -> list[RunRecord]:
    return [
        RunRecord("maxrate", target, rate, load=_load(5, 9, rate), extra={"passed": passed})
        for rate, passed in probes
    ]


def _search(start: float, cap: float, max_probes: int, ceiling: float) -> list[tuple[float, bool]]:
    """Run the bench's own rate search against a target that sustains exactly ``ceiling``."""
    search = RateSearch(start, cap, max_probes)
    probes = []
    while search.next_rate is not None:
        rate = search.next_rate
        probes.append((rate, rate <= ceiling))
        search.record(rate, rate <= ceiling)
    return probes


def _report(records: list[RunRecord], targets: tuple[str, ...] = ("direct", "sluicegate")) -> Report:
    max_rates: dict[str, float] = {}
    for r in records:
        if r.scenario == "maxrate" and r.extra.get("passed"):
            max_rates[r.target] = max(max_rates.get(r.target, 0.0), r.offered_rps)
        elif r.scenario == "maxrate":
            max_rates.setdefault(r.target, 0.0)
    return Report(
        meta={"commit": "abc", "mode": "quick"},
        scenarios=list(build_scenarios(quick=True).values()),
        targets=[Target(name) for name in targets],
        records=records,
        max_rates=max_rates,
        reference_p99_ms=3.0,
    )


def _verdicts(report: Report) -> dict[str, bool | None]:
    return {name: passed for name, _, _, passed in targets_check(report)}


def test_quick_mode_probe_limit_reached_by_both_is_not_measured() -> None:
    quick = build_scenarios(quick=True)["maxrate"]
    args = (quick.start_rate, quick.rate_cap, quick.max_probes)
    # Both sustain far more than quick mode probes: the search stops at 1,600 for both.
    direct = _search(*args, ceiling=3600)
    gate = _search(*args, ceiling=2000)
    assert direct == gate == [(400.0, True), (800.0, True), (1600.0, True)]
    report = _report(_probes("direct", *direct) + _probes("sluicegate", *gate))
    assert _verdicts(report)["S3 max sustained rate vs direct"] is None
    line = next(li for li in render_markdown(report).splitlines() if "S3 max sustained rate vs direct" in li)
    assert "**not measured**" in line and "PASS" not in line
    assert "≥ 1600 (no failing probe)" in line


def test_full_run_brackets_give_a_verdict() -> None:
    # The figures of the committed full run: direct 3,600 (4,000 failed), sluicegate 1,600 (1,800 failed).
    report = _report(
        _probes("direct", (3200, True), (6400, False), (4800, False), (4000, False), (3600, True))
        + _probes("sluicegate", (1600, True), (3200, False), (2400, False), (2000, False), (1800, False))
    )
    assert rate_bounds(report, "direct") == RateBounds(3600, 4000)
    assert rate_bounds(report, "sluicegate") == RateBounds(1600, 1800)
    assert _verdicts(report)["S3 max sustained rate vs direct"] is False


def test_ratio_verdict_needs_both_brackets_on_one_side() -> None:
    assert ratio_verdict(RateBounds(900, 1000), RateBounds(1000, 1100), 0.8) is True  # >= 82%
    assert ratio_verdict(RateBounds(1600, 1800), RateBounds(3600, 4000), 0.8) is False  # <= 50%
    assert ratio_verdict(RateBounds(1600, 2000), RateBounds(1800, 2200), 0.8) is None  # 73%..111%
    assert ratio_verdict(RateBounds(1600, 1800), RateBounds(1600, None), 0.8) is None  # direct unbounded
    assert ratio_verdict(RateBounds(1600, None), RateBounds(3200, 6400), 0.8) is None  # gate unbounded
    assert ratio_verdict(RateBounds(0, 25), RateBounds(1600, None), 0.8) is False  # < 25 / 1600


def test_litellm_that_sustains_nothing_is_bracketed_by_its_lowest_probe() -> None:
    report = _report(
        _probes("sluicegate", (1600, True), (1800, False))
        + _probes("litellm", (200, False), (100, False), (50, False), (25, False)),
        targets=("sluicegate", "litellm"),
    )
    assert rate_bounds(report, "litellm") == RateBounds(0, 25)
    _, measured, _, passed = next(c for c in targets_check(report) if "LiteLLM" in c[0])
    assert passed is True  # at least 1600 / 25 = 64x
    assert "64.0x" in measured
    quick = _report(
        _probes("sluicegate", (400, True), (800, True), (1600, True))
        + _probes("litellm", (400, False), (200, False), (100, False)),
        targets=("sluicegate", "litellm"),
    )
    assert _verdicts(quick)["S3 max sustained rate vs LiteLLM"] is True  # at least 16x


def test_missing_litellm_is_not_measured() -> None:
    report = _report(_probes("direct", (400, True)) + _probes("sluicegate", (400, True)))
    assert _verdicts(report)["S3 max sustained rate vs LiteLLM"] is None


def test_s1_comparisons_need_a_complete_direct_run() -> None:
    records = [
        RunRecord("stream", "direct", 200.0, load=_load(1000, 1010, 200, ok=90)),
        RunRecord("stream", "sluicegate", 200.0, load=_load(1001, 1012, 200)),
    ]
    verdicts = _verdicts(_report(records))
    assert verdicts["S1 @200 req/s: success"] is True
    assert verdicts["S1 @200 req/s: completed rate vs direct"] is None
    assert verdicts["S1 @200 req/s: added p50"] is None
    assert verdicts["S1 @200 req/s: added p99"] is None


@pytest.mark.parametrize(
    ("streams", "ok", "rss_mb", "expected"),
    [(1000, 100, 120.0, True), (1000, 100, 180.0, False), (640, 100, 90.0, None), (640, 90, 90.0, False)],
)
def test_s4_needs_the_concurrency_it_names(
    streams: int, ok: int, rss_mb: float, expected: bool | None
) -> None:
    mem = RunRecord("memory", "sluicegate", 500.0, load=_load(6000, 6010, 500, ok=ok), peak_rss_mb=rss_mb)
    mem.peak_pss_mb = rss_mb
    mem.extra["concurrent_streams"] = streams
    checks = [c for c in targets_check(_report([mem])) if c[0].startswith("S4")]
    assert [c[3] for c in checks] == [expected, expected]
    if expected is None:
        assert all(c[1].startswith("not measured") for c in checks)


def test_every_line_without_data_is_not_measured() -> None:
    verdicts = _verdicts(_report([]))
    assert verdicts  # the S1 and embedded-model lines are always listed
    assert all(passed is None for passed in verdicts.values())
    assert verdict_text(None) == "not measured"
    assert (verdict_text(True), verdict_text(False)) == ("PASS", "MISS")


def test_side_by_side_table_has_a_column_per_target() -> None:
    records = [
        RunRecord("stream", "direct", 200.0, load=_load(1000, 1010, 200)),
        RunRecord("stream", "portkey", 200.0, load=_load(1030, 1060, 200)),
        *_probes("direct", (400, True), (800, False)),
        *_probes("portkey", (400, True), (800, True), (1600, True)),
    ]
    report = _report(records, targets=("direct", "sluicegate", "portkey"))
    report.targets[1].error = "could not start"
    markdown = render_markdown(report)
    table = markdown.split("## Side by side", 1)[1].split("\n## ", 1)[0]
    assert "| figure | direct | sluicegate | portkey |" in table
    s3 = next(li for li in table.splitlines() if li.startswith("| S3 highest"))
    assert s3.split("|")[2:5] == [" 400 ", " failed ", " ≥ 1,600 "]
    added_p99 = next(li for li in table.splitlines() if li.startswith("| S1 @200 req/s: added p99"))
    assert added_p99.split("|")[4].strip() == "50.0"
