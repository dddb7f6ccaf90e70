"""Turn run records into results.md (tables + PASS/MISS targets), results.json and a PNG chart."""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.scenarios import ADDED_P99_BUDGET_MS, Scenario
from bench.targets import BARE, BASELINE, DIRECT, LITELLM, PORTKEY, SLUICEGATE
from bench.verdicts import (
    Report,
    added_latency,
    find,
    rate_bounds,
    targets_check,
    verdict_text,
)

__all__ = ["Report", "added_latency", "render_markdown", "targets_check", "to_json", "write_all"]
COLORS = {DIRECT: "tab:gray", BARE: "tab:green", SLUICEGATE: "tab:blue", LITELLM: "tab:orange", PORTKEY: "tab:purple", BASELINE: "tab:cyan"}


def _fmt(value: float | None, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}"


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


def _summary_cells(report: Report, name: str) -> list[str]:
    """One target's column of the side-by-side table."""
    s1 = find(report, "stream", name, 200.0)
    s2 = find(report, "nonstream", name, 200.0)
    mem = find(report, "memory", name)
    bounds = rate_bounds(report, name)
    s3 = None
    if bounds is not None:
        s3 = next(
            (
                r
                for r in report.records
                if r.scenario == "maxrate" and r.target == name and r.offered_rps == bounds.low and r.load
            ),
            None,
        )
    s3_rate = "-"
    if bounds is not None:
        s3_rate = f"{'≥ ' if bounds.high is None else ''}{bounds.low:,.0f}"
    return [
        _fmt(s1.load["success_pct"], 2) if s1 else "-",
        _fmt(added_latency(report, s1)[1]) if s1 else "-",
        _fmt(added_latency(report, s2)[1]) if s2 else "-",
        s3_rate,
        _fmt(s3.cpu_s_per_1k, 2) if s3 else "-",
        _fmt(mem.peak_pss_mb) if mem else "-",
        _fmt(mem.extra.get("kb_per_stream")) if mem else "-",
    ]


def _summary_table(report: Report) -> list[str]:
    """Targets as columns: the figures a reader compares first, each from the tables below."""
    rows = [
        "S1 @200 req/s: success %",
        "S1 @200 req/s: added p99 ms",
        "S2 @200 req/s: added p99 ms",
        "S3 highest sustained req/s",
        "S3 CPU ms / request at that rate",
        "S4 peak PSS MB (1,000 streams)",
        "S4 KB / stream (RSS growth)",
    ]
    names = [t.name for t in report.targets]
    columns = {
        t.name: _summary_cells(report, t.name) if t.ok else ["failed"] * len(rows) for t in report.targets
    }
    lines = ["| figure | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for i, row in enumerate(rows):
        lines.append(f"| {row} | " + " | ".join(columns[n][i] for n in names) + " |")
    return lines


def _targets_table(report: Report) -> list[str]:
    lines = ["| target | measured | threshold | result |", "|---|---|---|---|"]
    for name, measured, threshold, passed in targets_check(report):
        lines.append(f"| {name} | {measured} | {threshold} | **{verdict_text(passed)}** |")
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
        f"- gateway workers: {meta.get('workers')}; LiteLLM: {meta.get('litellm')};"
        f" Portkey: {meta.get('portkey', 'not run')} (one Node process, as its start script runs)",
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
    out += ["## Side by side", "", *_summary_table(report), ""]
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
    colors = COLORS
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
