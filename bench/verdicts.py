"""The PASS/MISS lines of the report, and when a line must say "not measured" instead.

A verdict is given only when the run measured the figure: a comparison against a run that did not
complete, a concurrency the load never reached, or a highest rate whose search ended without a
failing probe (quick mode stops after three probes) yields ``None``, shown as "not measured".
The highest sustained rate is known only as a bracket, sustained at ``low`` and failed at ``high``;
a ratio of two rates is judged only when every ratio the two brackets allow is on the same side
of the threshold.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.scenarios import RunRecord, Scenario
from bench.stats import added
from bench.targets import DIRECT, LITELLM, SLUICEGATE, Target

Check = tuple[str, str, str, bool | None]
S4_STREAMS = 1000
S4_LIMIT_MB = 150.0


@dataclass
class Report:
    meta: dict[str, Any]
    scenarios: Sequence[Scenario]
    targets: Sequence[Target]
    records: Sequence[RunRecord]
    max_rates: dict[str, float] = field(default_factory=dict)
    reference_p99_ms: float | None = None
    local_model: dict[str, Any] | None = None


def verdict_text(passed: bool | None) -> str:
    return "not measured" if passed is None else ("PASS" if passed else "MISS")


def _direct_for(report: Report, record: RunRecord) -> RunRecord | None:
    for other in report.records:
        if (
            other.scenario == record.scenario
            and other.target == DIRECT
            and other.offered_rps == record.offered_rps
        ):
            return other if other.load else None
    return None


def added_latency(report: Report, record: RunRecord) -> tuple[float, float]:
    """(added p50, added p99) of total latency versus direct at the same scenario and offered rate."""
    direct = _direct_for(report, record)
    if direct is None or not record.load or record.target == DIRECT:
        return (0.0, 0.0) if record.target == DIRECT and record.load else (math.nan, math.nan)
    return (
        added(record.load["total_ms"]["p50"], direct.load["total_ms"]["p50"]),
        added(record.load["total_ms"]["p99"], direct.load["total_ms"]["p99"]),
    )


def find(report: Report, scenario: str, target: str, rate: float | None = None) -> RunRecord | None:
    for r in report.records:
        if (
            r.scenario == scenario
            and r.target == target
            and (rate is None or r.offered_rps == rate)
            and r.load
        ):
            return r
    return None


def _complete(record: RunRecord) -> bool:
    return bool(record.load) and record.load["ok"] == record.load["scheduled"]


@dataclass(frozen=True)
class RateBounds:
    """A highest sustained rate as the search left it: sustained at ``low`` (0 when no probe
    passed), failed at ``high`` (None when no probe failed, so the ceiling is unknown)."""

    low: float
    high: float | None

    def text(self) -> str:
        if self.high is None:
            return f"≥ {self.low:.0f} (no failing probe)"
        return f"{self.low:.0f} (failed at {self.high:.0f})"


def rate_bounds(report: Report, target: str) -> RateBounds | None:
    if target not in report.max_rates:
        return None
    low = report.max_rates[target]
    failed = [
        r.offered_rps
        for r in report.records
        if r.scenario == "maxrate" and r.target == target and not r.extra.get("passed")
    ]
    return RateBounds(low, min((rate for rate in failed if rate > low), default=None))


def ratio_range(num: RateBounds, den: RateBounds) -> tuple[float, float]:
    """The lowest and highest ratio num / den that the two brackets allow."""
    lowest = num.low / den.high if den.high else 0.0
    highest = num.high / den.low if num.high is not None and den.low > 0 else math.inf
    return lowest, highest


def ratio_verdict(num: RateBounds, den: RateBounds, threshold: float) -> bool | None:
    lowest, highest = ratio_range(num, den)
    if lowest >= threshold:
        return True
    if highest <= threshold:
        return False
    return None


def _ratio_check(name: str, num: RateBounds, den: RateBounds, threshold: float, shown: str) -> Check:
    lowest, highest = ratio_range(num, den)
    passed = ratio_verdict(num, den, threshold)
    scale = 100.0 if threshold < 5 else 1.0

    def fmt(value: float) -> str:
        if math.isinf(value):
            return "unbounded"
        return f"{value * 100:.0f}%" if scale == 100.0 else f"{value:.1f}x"

    measured = f"{num.text()} vs {den.text()}: ratio {fmt(lowest)}"
    if not math.isclose(lowest, highest):
        measured += f" to {fmt(highest)}"
    if passed is None:
        measured = f"not measured: {measured}, on both sides of {shown}"
    return (name, measured, shown, passed)


_S1_RELATIVE = (
    ("S1 @200 req/s: completed rate vs direct", "≥ 98%"),
    ("S1 @200 req/s: added p50", "≤ 5 ms"),
    ("S1 @200 req/s: added p99", "≤ 25 ms"),
)


def _s1_checks(report: Report) -> list[Check]:
    gate = find(report, "stream", SLUICEGATE, 200.0)
    direct = find(report, "stream", DIRECT, 200.0)
    if gate is None:
        return [("S1 @200 req/s", "not measured", "-", None)]
    checks: list[Check] = [
        ("S1 @200 req/s: success", f"{gate.load['success_pct']:.2f}%", "100%", _complete(gate))
    ]
    if direct is None or not _complete(direct):
        why = "not measured: direct did not complete every request at 200 req/s"
        return [
            *checks,
            *((name, why, threshold, None) for name, threshold in _S1_RELATIVE),
        ]
    add50, add99 = added_latency(report, gate)
    ratio = 100 * gate.load["completed_rps"] / max(direct.load["completed_rps"], 1e-9)
    return [
        *checks,
        ("S1 @200 req/s: completed rate vs direct", f"{ratio:.1f}%", "≥ 98%", ratio >= 98.0),
        ("S1 @200 req/s: added p50", f"{add50:.1f} ms", "≤ 5 ms", add50 <= 5.0),
        ("S1 @200 req/s: added p99", f"{add99:.1f} ms", "≤ 25 ms", add99 <= 25.0),
    ]


def _s3_checks(report: Report) -> list[Check]:
    if not report.max_rates:
        return []
    gate = rate_bounds(report, SLUICEGATE)
    direct = rate_bounds(report, DIRECT)
    lite = rate_bounds(report, LITELLM)
    checks: list[Check] = []
    name = "S3 max sustained rate vs direct"
    if gate is not None and direct is not None:
        checks.append(_ratio_check(name, gate, direct, 0.8, "≥ 80%"))
    else:
        checks.append((name, "not measured", "≥ 80%", None))
    name = "S3 max sustained rate vs LiteLLM"
    if gate is not None and lite is not None:
        checks.append(_ratio_check(name, gate, lite, 10.0, "≥ 10x"))
    else:
        checks.append((name, "not measured: LiteLLM did not run", "≥ 10x", None))
    return checks


def _s4_checks(report: Report) -> list[Check]:
    mem = find(report, "memory", SLUICEGATE)
    if mem is None:
        return []
    streams = int(mem.extra.get("concurrent_streams", 0))
    rss = f"{mem.peak_rss_mb:.0f} MB RSS (PSS {mem.peak_pss_mb:.0f} MB)"
    pss = f"{mem.peak_pss_mb:.0f} MB"
    lines = (
        (f"S4 peak RSS at {streams} concurrent streams", mem.peak_rss_mb, rss),
        # RSS summed over processes counts every shared page once per process; PSS splits them.
        (f"S4 peak PSS (shared pages counted once) at {streams} streams", mem.peak_pss_mb, pss),
    )
    checks: list[Check] = []
    for label, value, measured in lines:
        passed: bool | None
        if not _complete(mem):
            passed = False  # failed streams are a failure whatever the concurrency reached
        elif streams < S4_STREAMS:
            passed = None
            measured = f"not measured: only {streams} of {S4_STREAMS} streams were open at once ({measured})"
        else:
            passed = value <= S4_LIMIT_MB
        checks.append((label, measured, f"≤ {S4_LIMIT_MB:.0f} MB", passed))
    return checks


def _local_checks(report: Report) -> list[Check]:
    local = report.local_model
    if local and local.get("gateway_tokens_per_s") and local.get("direct_tokens_per_s"):
        pct = 100 * local["gateway_tokens_per_s"] / local["direct_tokens_per_s"]
        measured = f"{local['gateway_tokens_per_s']:.1f} vs {local['direct_tokens_per_s']:.1f} ({pct:.1f}%)"
        return [("Embedded model tokens/s through gateway vs direct", measured, "≥ 95%", pct >= 95.0)]
    return [
        ("Embedded model tokens/s vs direct", "not measured (python -m bench.local_model)", "≥ 95%", None)
    ]


def targets_check(report: Report) -> list[Check]:
    """(target line, measured, threshold, passed): passed is None when the run could not measure it."""
    return [*_s1_checks(report), *_s3_checks(report), *_s4_checks(report), *_local_checks(report)]
