"""Percentile and summary maths, kept dependency-free so the unit tests can pin them to known values."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default ``linear`` method); ``q`` in [0, 100].

    Returns NaN for an empty sequence so an empty run never looks like a fast one.
    """
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within [0, 100], got {q}")
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = math.ceil(rank)
    if low == high:
        return float(ordered[low])
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarize_ms(values_s: Sequence[float]) -> dict[str, float]:
    """p50/p90/p99/max/mean in milliseconds from samples in seconds."""
    ms = [v * 1000 for v in values_s]
    return {
        "p50": percentile(ms, 50),
        "p90": percentile(ms, 90),
        "p99": percentile(ms, 99),
        "max": max(ms) if ms else math.nan,
        "mean": sum(ms) / len(ms) if ms else math.nan,
    }


def added(target: float, baseline: float) -> float:
    """Latency a gateway adds over the direct path at the same percentile (NaN-safe)."""
    if math.isnan(target) or math.isnan(baseline):
        return math.nan
    return target - baseline


def completed_rate(ok: int, window_s: float, first_done: float | None, last_done: float | None) -> float:
    """Successful completions per second.

    The span between the first and last completion stretches when a target falls behind the offered
    rate, so dividing by ``max(window, span)`` turns a growing queue into a lower completed rate.
    """
    if ok == 0 or window_s <= 0:
        return 0.0
    span = (last_done - first_done) if first_done is not None and last_done is not None else 0.0
    return ok / max(window_s, span)
