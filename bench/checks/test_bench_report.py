"""Report rendering: PASS/MISS lines, added latency versus direct, JSON and chart files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.report import Report, added_latency, render_markdown, targets_check, to_json, write_all
from bench.scenarios import RunRecord, build_scenarios
from bench.targets import Target


def _load(p50: float, p99: float, rps: float, ok: int = 100, scheduled: int = 100) -> dict[str, Any]:
    summary = {"p50": p50, "p90": p99, "p99": p99, "max": p99, "mean": p50}
    return {
        "offered_rps": rps,
        "completed_rps": rps,
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


def _report() -> Report:
    scenarios = list(build_scenarios(quick=True).values())
    records = [
        RunRecord("stream", "direct", 200.0, load=_load(1000.0, 1010.0, 200.0)),
        RunRecord("stream", "sluicegate", 200.0, load=_load(1003.0, 1040.0, 199.0), peak_rss_mb=90.0),
        RunRecord("stream", "litellm", 200.0, load=_load(1500.0, 4000.0, 60.0, ok=30)),
        RunRecord("stream", "litellm", 600.0, error="skipped: collapsed at 200 req/s"),
        RunRecord("memory", "sluicegate", 400.0, load=_load(6000.0, 6010.0, 400.0), peak_rss_mb=140.0),
    ]
    records[-1].extra["concurrent_streams"] = 1000
    # Scenario 3 brackets: direct 1000-1100, sluicegate 900-1000, LiteLLM 100-200 req/s.
    for target, rate, passed in (
        ("direct", 1000.0, True),
        ("direct", 1100.0, False),
        ("sluicegate", 900.0, True),
        ("sluicegate", 1000.0, False),
        ("litellm", 100.0, True),
        ("litellm", 200.0, False),
    ):
        records.append(
            RunRecord("maxrate", target, rate, load=_load(5.0, 9.0, rate), extra={"passed": passed})
        )
    return Report(
        meta={"commit": "abc123", "mode": "quick"},
        scenarios=scenarios,
        targets=[Target("direct"), Target("sluicegate"), Target("litellm", error="install failed")],
        records=records,
        max_rates={"direct": 1000.0, "sluicegate": 900.0, "litellm": 100.0},
        reference_p99_ms=5.0,
        local_model={"direct_tokens_per_s": 100.0, "gateway_tokens_per_s": 96.0},
    )


def test_added_latency_is_relative_to_direct_at_same_rate() -> None:
    report = _report()
    assert added_latency(report, report.records[1]) == (3.0, 30.0)
    assert added_latency(report, report.records[0]) == (0.0, 0.0)


def test_targets_check_verdicts() -> None:
    verdicts = {name: passed for name, _, _, passed in targets_check(_report())}
    assert verdicts["S1 @200 req/s: success"] is True
    assert verdicts["S1 @200 req/s: completed rate vs direct"] is True  # 199 / 200 >= 98%
    assert verdicts["S1 @200 req/s: added p50"] is True
    assert verdicts["S1 @200 req/s: added p99"] is False  # 30 ms > 25 ms
    assert verdicts["S3 max sustained rate vs direct"] is True  # at least 900 / 1100 = 82%
    assert verdicts["S3 max sustained rate vs LiteLLM"] is False  # at most 1000 / 100 = 10x, not above
    assert verdicts["S4 peak RSS at 1000 concurrent streams"] is True
    assert verdicts["Embedded model tokens/s through gateway vs direct"] is True


def test_markdown_and_json() -> None:
    report = _report()
    markdown = render_markdown(report)
    assert "**MISS**" in markdown and "**PASS**" in markdown
    assert "litellm**: install failed" in markdown
    assert "skipped: collapsed at 200 req/s" in markdown
    data = json.loads(json.dumps(to_json(report), default=str))
    assert data["meta"]["commit"] == "abc123"
    assert data["max_sustained_rps"]["sluicegate"] == 900.0


def test_write_all_produces_the_three_files(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    paths = write_all(_report(), tmp_path)
    assert paths["markdown"].read_text().startswith("# sluicegate benchmark results")
    assert json.loads(paths["json"].read_text())["records"]
    assert paths["chart"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
