"""Turn run records into results.md (tables + PASS/MISS targets), results.json and a PNG chart."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.scenarios import ADDED_P99_BUDGET_MS, RunRecord, Scenario
from bench.stats import added
from bench.targets import DIRECT, LITELLM, SLUICEGATE, Target


@dataclass
class Report:
    meta: dict[str, Any]
    scenarios: Sequence[Scenario]
    targets: Sequence[Target]
    records: Sequence[RunRecord]
    max_rates: dict[str, float] = field(default_factory=dict)
    reference_p99_ms: float | None = None
    local_model: dict[str, Any] | None = None


def _fmt(value: float | None, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}"


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


def _sweep_table(report: Report, scenario: Scenario) -> list[str]:
    lines = [
        "| target | offered req/s | completed req/s | success % | TTFB p50 ms | TTFB p99 ms | total p50 ms "
        "| total p99 ms | added p50 ms | added p99 ms | peak RSS MB | CPU s / 1k req |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    records = sorted(
        (r for r in report.records if r.scenario == scenario.key), key=lambda r: (r.offered_rps, r.target)
    )
    for r in records:
        if r.error or not r.load:
            reason = r.error if (r.error or "").startswith("skipped") else f"failed: {r.error}"
            lines.append(f"| {r.target} | {r.offered_rps:.0f} | {reason} ||||||||||")
            continue
        add50, add99 = added_latency(report, r)
        load = r.load
        lines.append(
            f"| {r.target} | {r.offered_rps:.0f} | {_fmt(load['completed_rps'])} | {_fmt(load['success_pct'], 2)} "
            f"| {_fmt(load['ttfb_ms']['p50'])} | {_fmt(load['ttfb_ms']['p99'])} | {_fmt(load['total_ms']['p50'])} "
            f"| {_fmt(load['total_ms']['p99'])} | {_fmt(add50)} | {_fmt(add99)} | {_fmt(r.peak_rss_mb)} "
            f"| {_fmt(r.cpu_s_per_1k, 2)} |"
        )
    return lines


def _max_rate_table(report: Report, scenario: Scenario) -> list[str]:
    direct_max = report.max_rates.get(DIRECT, 0.0)
    lines = [
        f"Sustained = 100% success, completed ≥ 95% of offered and p99 ≤ unloaded direct p99 "
        f"({_fmt(report.reference_p99_ms)} ms) + {ADDED_P99_BUDGET_MS:.0f} ms.",
        "",
        "| target | highest sustained req/s | % of direct | peak RSS MB | CPU s / 1k req | probes (req/s: pass) |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name, best in report.max_rates.items():
        probes = [r for r in report.records if r.scenario == scenario.key and r.target == name]
        probe_text = ", ".join(f"{r.offered_rps:.0f}:{'✓' if r.extra.get('passed') else '✗'}" for r in probes)
        at_best = next((r for r in probes if r.offered_rps == best and r.load), None)
        pct = 100 * best / direct_max if direct_max else math.nan
        lines.append(
            f"| {name} | {_fmt(best, 0)} | {_fmt(pct, 0)} | {_fmt(at_best.peak_rss_mb if at_best else None)} "
            f"| {_fmt(at_best.cpu_s_per_1k if at_best else None, 2)} | {probe_text} |"
        )
    return lines


def _memory_table(report: Report, scenario: Scenario) -> list[str]:
    lines = [
        "Runs before the other scenarios, on freshly warmed targets, so RSS before is the idle footprint.",
        "",
        "| target | concurrent streams | success % | RSS before MB | peak RSS MB | peak PSS MB | KB / stream "
        "| processes | CPU s / 1k req |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in (r for r in report.records if r.scenario == scenario.key):
        if r.error or not r.load:
            lines.append(f"| {r.target} | failed: {r.error} ||||||||")
            continue
        lines.append(
            f"| {r.target} | {r.extra.get('concurrent_streams', 0)} | {_fmt(r.load['success_pct'], 2)} "
            f"| {_fmt(r.baseline_rss_mb)} | {_fmt(r.peak_rss_mb)} | {_fmt(r.peak_pss_mb)} "
            f"| {_fmt(r.extra.get('kb_per_stream'))} "
            f"| {r.processes} | {_fmt(r.cpu_s_per_1k, 2)} |"
        )
    return lines


def _find(report: Report, scenario: str, target: str, rate: float | None = None) -> RunRecord | None:
    for r in report.records:
        if (
            r.scenario == scenario
            and r.target == target
            and (rate is None or r.offered_rps == rate)
            and r.load
        ):
            return r
    return None


def targets_check(report: Report) -> list[tuple[str, str, str, bool | None]]:
    """(target line, measured, threshold, passed) — passed is None when it could not be measured."""
    checks: list[tuple[str, str, str, bool | None]] = []
    gate = _find(report, "stream", SLUICEGATE, 200.0)
    direct = _find(report, "stream", DIRECT, 200.0)
    if gate and direct:
        add50, add99 = added_latency(report, gate)
        ratio = 100 * gate.load["completed_rps"] / max(direct.load["completed_rps"], 1e-9)
        checks += [
            (
                "S1 @200 req/s: success",
                f"{gate.load['success_pct']:.2f}%",
                "100%",
                gate.load["ok"] == gate.load["scheduled"],
            ),
            ("S1 @200 req/s: completed rate vs direct", f"{ratio:.1f}%", "≥ 98%", ratio >= 98.0),
            ("S1 @200 req/s: added p50", f"{add50:.1f} ms", "≤ 5 ms", add50 <= 5.0),
            ("S1 @200 req/s: added p99", f"{add99:.1f} ms", "≤ 25 ms", add99 <= 25.0),
        ]
    else:
        checks.append(("S1 @200 req/s", "not measured", "-", None))
    if report.max_rates:
        gate_max = report.max_rates.get(SLUICEGATE)
        direct_max = report.max_rates.get(DIRECT)
        lite_max = report.max_rates.get(LITELLM)
        if gate_max is not None and direct_max:
            pct = 100 * gate_max / direct_max
            checks.append(
                (
                    "S3 max sustained rate vs direct",
                    f"{gate_max:.0f} vs {direct_max:.0f} ({pct:.0f}%)",
                    "≥ 80%",
                    pct >= 80,
                )
            )
        else:
            checks.append(("S3 max sustained rate vs direct", "not measured", "≥ 80%", None))
        if gate_max is not None and lite_max is not None:
            ratio_text = (
                f"{gate_max / lite_max:.1f}x" if lite_max else "LiteLLM sustained none of the probed rates"
            )
            passed = gate_max >= 10 * lite_max and gate_max > 0
            checks.append(
                (
                    "S3 max sustained rate vs LiteLLM",
                    f"{gate_max:.0f} vs {lite_max:.0f} ({ratio_text})",
                    "≥ 10x",
                    passed,
                )
            )
        else:
            checks.append(("S3 max sustained rate vs LiteLLM", "LiteLLM not measured", "≥ 10x", None))
    mem = _find(report, "memory", SLUICEGATE)
    if mem:
        streams = mem.extra.get("concurrent_streams", 0)
        ok = mem.peak_rss_mb <= 150 and streams >= 1000 and mem.load["ok"] == mem.load["scheduled"]
        measured = f"{mem.peak_rss_mb:.0f} MB RSS (PSS {mem.peak_pss_mb:.0f} MB)"
        checks.append((f"S4 peak RSS at {streams} concurrent streams", measured, "≤ 150 MB", ok))
        # RSS summed over processes counts every shared page once per process; PSS splits them.
        pss_ok = mem.peak_pss_mb <= 150 and streams >= 1000 and mem.load["ok"] == mem.load["scheduled"]
        checks.append(
            (
                f"S4 peak PSS (shared pages counted once) at {streams} streams",
                f"{mem.peak_pss_mb:.0f} MB",
                "≤ 150 MB",
                pss_ok,
            )
        )
    local = report.local_model
    if local and local.get("gateway_tokens_per_s") and local.get("direct_tokens_per_s"):
        pct = 100 * local["gateway_tokens_per_s"] / local["direct_tokens_per_s"]
        checks.append(
            (
                "Embedded model tokens/s through gateway vs direct",
                f"{local['gateway_tokens_per_s']:.1f} vs {local['direct_tokens_per_s']:.1f} ({pct:.1f}%)",
                "≥ 95%",
                pct >= 95.0,
            )
        )
    else:
        checks.append(
            ("Embedded model tokens/s vs direct", "not measured (python -m bench.local_model)", "≥ 95%", None)
        )
    return checks


def _targets_table(report: Report) -> list[str]:
    lines = ["| target | measured | threshold | result |", "|---|---|---|---|"]
    for name, measured, threshold, passed in targets_check(report):
        verdict = "n/a" if passed is None else ("PASS" if passed else "MISS")
        lines.append(f"| {name} | {measured} | {threshold} | **{verdict}** |")
    return lines


def _local_table(local: dict[str, Any]) -> list[str]:
    lines = [
        f"Model `{local.get('model')}`, {local.get('repetitions')} interleaved repetitions, max_tokens "
        f"{local.get('max_tokens')}, temperature 0, seed {local.get('seed')}; medians.",
        "",
        "| path | tokens/s | TTFT ms | total ms | completion tokens |",
        "|---|---:|---:|---:|---:|",
    ]
    for path in ("direct", "gateway"):
        lines.append(
            f"| {path} | {_fmt(local.get(f'{path}_tokens_per_s'))} | {_fmt(local.get(f'{path}_ttft_ms'))} "
            f"| {_fmt(local.get(f'{path}_total_ms'))} | {_fmt(local.get(f'{path}_tokens'), 0)} |"
        )
    if local.get("note"):
        lines += ["", f"Note: {local['note']}"]
    return lines


def render_markdown(report: Report) -> str:
    meta = report.meta
    out = [
        "# sluicegate benchmark results",
        "",
        f"- commit: `{meta.get('commit')}`{' (dirty work tree)' if meta.get('dirty') else ''}",
        f"- date: {meta.get('date')}; mode: {meta.get('mode')}; machine: {meta.get('machine')}",
        f"- gateway workers: {meta.get('workers')}; LiteLLM: {meta.get('litellm')}",
        "- latency is measured from each request's *scheduled* send time (open loop, no coordinated omission);"
        " added = target percentile - direct percentile at the same offered rate;"
        " RSS and CPU are for the target's own process tree (for `direct`, the mock itself).",
        "",
    ]
    failed = [t for t in report.targets if not t.ok]
    if failed:
        out += ["## Failed targets", ""]
        out += [f"- **{t.name}**: {t.error}" for t in failed]
        out.append("")
    out += ["## Targets", "", *_targets_table(report), ""]
    for scenario in report.scenarios:
        out += [f"## Scenario {scenario.title}", ""]
        if scenario.kind == "sweep":
            out += _sweep_table(report, scenario)
        elif scenario.kind == "max_rate":
            out += _max_rate_table(report, scenario)
        else:
            out += _memory_table(report, scenario)
        out.append("")
    if report.local_model:
        out += ["## Embedded model (smollm2-135m-instruct)", "", *_local_table(report.local_model), ""]
    gen = [
        r.load
        for r in report.records
        if r.load and r.target == DIRECT and r.load["ok"] == r.load["scheduled"]
    ]
    if gen:
        busiest = max(gen, key=lambda g: g["generator_cpu_s"] / max(g["wall_s"], 1e-9))
        worst = 100 * busiest["generator_cpu_s"] / max(busiest["wall_s"], 1e-9)
        lag = max(g["send_lag_ms"]["p99"] for g in gen if not math.isnan(g["send_lag_ms"]["p99"]))
        out += [
            f"Load generator health (direct runs with 100% success): the busiest ({busiest['offered_rps']:.0f} req/s)"
            f" used {worst:.0f}% of one core; worst send-lag p99 {lag:.1f} ms. The direct ceiling in scenario 3 is"
            " where the mock and the generator together saturate the machine's cores.",
            "",
        ]
    return "\n".join(out)


def render_chart(report: Report, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sweeps = [s for s in report.scenarios if s.kind == "sweep"]
    panels = len(sweeps) + (1 if report.max_rates else 0)
    if panels == 0:
        return
    fig, axes = plt.subplots(1, panels, figsize=(6 * panels, 4.5), squeeze=False)
    colors = {DIRECT: "tab:gray", SLUICEGATE: "tab:blue", LITELLM: "tab:orange"}
    for ax, scenario in zip(axes[0], sweeps, strict=False):
        for name in (t.name for t in report.targets if t.ok):
            rows = sorted(
                (r for r in report.records if r.scenario == scenario.key and r.target == name and r.load),
                key=lambda r: r.offered_rps,
            )
            if not rows:
                continue
            xs = [r.offered_rps for r in rows]
            color = colors.get(name)
            ax.plot(xs, [r.load["total_ms"]["p50"] for r in rows], "o-", color=color, label=f"{name} p50")
            ax.plot(xs, [r.load["total_ms"]["p99"] for r in rows], "s--", color=color, label=f"{name} p99")
            for r in rows:  # latencies only cover successes: flag the runs where many failed
                if r.load["success_pct"] < 100:
                    ax.annotate(
                        f"{r.load['success_pct']:.0f}% ok",
                        (r.offered_rps, r.load["total_ms"]["p99"]),
                        textcoords="offset points",
                        xytext=(4, 4),
                        fontsize=7,
                        color=color,
                    )
        ax.set_title(f"Scenario {scenario.title}\n(latency from scheduled send, successes only)", fontsize=9)
        ax.set_xlabel("offered rate (req/s)")
        ax.set_ylabel("total latency (ms, log)")
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    if report.max_rates:
        ax = axes[0][-1]
        names = list(report.max_rates)
        ax.bar(names, [report.max_rates[n] for n in names], color=[colors.get(n, "tab:green") for n in names])
        ax.set_title("Scenario 3: highest sustained rate (short streams)", fontsize=9)
        ax.set_ylabel("req/s")
        ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def to_json(report: Report) -> dict[str, Any]:
    return {
        "meta": report.meta,
        "scenarios": [asdict(s) for s in report.scenarios],
        "targets": [
            {"name": t.name, "ok": t.ok, "error": t.error, "base_url": t.base_url, "info": t.info}
            for t in report.targets
        ],
        "records": [asdict(r) for r in report.records],
        "max_sustained_rps": report.max_rates,
        "reference_p99_ms": report.reference_p99_ms,
        "local_model": report.local_model,
        "targets_check": [
            {"target": name, "measured": m, "threshold": t, "passed": p}
            for name, m, t, p in targets_check(report)
        ],
    }


def write_all(report: Report, out_dir: Path) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "markdown": out_dir / "results.md",
        "json": out_dir / "results.json",
        "chart": out_dir / "latency.png",
    }
    paths["markdown"].write_text(render_markdown(report) + "\n")
    paths["json"].write_text(json.dumps(to_json(report), indent=2, default=str) + "\n")
    render_chart(report, paths["chart"])
    return paths
