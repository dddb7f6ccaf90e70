"""``python -m bench.governance``: what governance costs, on versus off in the same run.

Two sluicegate targets behind the same mock upstream, identical but for `governance.enabled`;
the "on" target's key has a budget, a requests-per-minute and a tokens-per-minute limit (set
high enough never to refuse), so every request takes the whole admission path (limiter + atomic
budget reservation) and writes a ledger row. Run for SQLite (the default store) and for
PostgreSQL + Redis (`--backends sqlite,postgres`; PostgreSQL and Redis on 127.0.0.1).

Figures, per backend: p50 time to first byte and total of 1-second streams at 200 req/s (three
interleaved rounds, median of the p50s), the highest sustained rate of short streams (the
main benchmark's scenario 3 criterion, searched to within 5% in full mode), and the CPU one short
stream costs each target's process tree at saturation (wrk, 50 streams in flight, interleaved
rounds; on a CPU-bound machine the sustainable rate goes as its inverse, so 1 - off/on is the
capacity governance takes, measured far more finely than by probing rates). Targets: added
p50 <= 1 ms, rate drop <= 10%. Results: ``bench/results/governance.md`` and ``governance.json``.

`--baseline-src DIR` adds another source tree's gov-off and gov-on targets to the saturated
rounds (same mock, database and rounds, alternating with the others), so "did governance get
dearer?" is answered within one run: the machine's speed moves too much between runs to compare
a capacity drop with an older run's.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from bench import hop, litellm_env
from bench.__main__ import git_meta, machine, smoke
from bench.processes import free_port, spawn, stop
from bench.scenarios import REPO_ROOT, Runner, build_scenarios
from bench.targets import Target, _ready, sluicegate_config, start_mock

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/0"
OFF, ON = "gov-off", "gov-on"
BASE_OFF, BASE_ON = "base-gov-off", "base-gov-on"  # --baseline-src
PAIRS = ((OFF, ON), (BASE_OFF, BASE_ON))
NOISE_MS = 5.0


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def start_target(
    name: str,
    workdir: Path,
    mock_url: str,
    models: list[str],
    workers: int,
    extra: dict[str, Any],
    env: dict[str, str] | None = None,
) -> Target:
    """sluicegate with `extra` config sections and a key made through its CLI (with rules when
    governance is on); `env` may name another source tree (PYTHONPATH)."""
    target = Target(name)
    exe = shutil.which("sluicegate")
    if exe is None:
        target.error = "`sluicegate` is not installed on PATH (pip install -e .)"
        return target
    data_dir = workdir / f"{name}-data"
    data_dir.mkdir(parents=True, exist_ok=True)
    config = workdir / f"{name}.yaml"
    config.write_text(yaml.safe_dump({**sluicegate_config(mock_url, models), **extra}, sort_keys=False))
    common = ["--config", str(config), "--data-dir", str(data_dir)]
    governed = bool(extra.get("governance", {}).get("enabled", True))
    rules = ["--budget", "1000000", "--rpm", "10000000", "--tpm", "10000000000"] if governed else []
    created = subprocess.run(
        [exe, "keys", "create", "--name", name, *rules, *common],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )
    if created.returncode != 0:
        target.error = f"keys create failed: {created.stderr[-400:]}"
        return target
    key = created.stdout.strip().splitlines()[-1]
    port = free_port()
    cmd = [exe, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers), *common]
    managed = spawn(name, cmd, workdir / f"{name}.log", env=env)
    return _ready(target, managed, port, key, "/health", timeout_s=60)


def backend_sections(backend: str, tag: str) -> dict[str, Any]:
    if backend == "sqlite":
        return {}
    return {"database": {"url": f"{PG_URL}?schema={tag}"}, "redis": {"url": REDIS_URL, "prefix": tag + ":"}}


def drop_schema(tag: str) -> None:
    subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-qc", f'DROP SCHEMA IF EXISTS "{tag}" CASCADE'],
        capture_output=True,
        timeout=60,
        check=False,
    )
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=tag + ":*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def measure(
    backend: str, workdir: Path, mock: Target, workers: int, quick: bool, rounds: int, baseline: Path | None = None
) -> dict[str, Any]:
    scenarios = build_scenarios(quick)
    stream = replace(scenarios["stream"], rates=(200.0,) * rounds, title="1-s streams at 200 req/s")
    maxrate = scenarios["maxrate"]
    if not quick:  # the default 15% steps cannot tell a 10% drop from none
        maxrate = replace(maxrate, rate_precision=0.05, max_probes=12)
    models = sorted({stream.model, maxrate.model, "mock-c5-t50"})
    tag = f"bench_gov_{secrets.token_hex(4)}"
    sections = backend_sections(backend, tag)
    targets: list[Target] = []
    try:
        for name, enabled in ((OFF, False), (ON, True)):
            target = start_target(
                name, workdir / backend, mock.base_url, models, workers, {**sections, "governance": {"enabled": enabled}}
            )
            if target.ok:
                target.error = smoke(target)
            log(f"[gov/{backend}] {name}: {'ready' if target.ok else 'FAILED: ' + str(target.error)}")
            targets.append(target)
        bases: list[Target] = []
        if baseline is not None:  # in the saturated rounds only
            env = {"PYTHONPATH": str(baseline.resolve())}
            for name, enabled in ((BASE_OFF, False), (BASE_ON, True)):
                extra = {**backend_sections(backend, f"{tag}_base"), "governance": {"enabled": enabled}}
                target = start_target(name, workdir / backend, mock.base_url, models, workers, extra, env)
                log(f"[gov/{backend}] {name} ({baseline}): {'ready' if target.ok else 'FAILED: ' + str(target.error)}")
                bases.append(target)
        if not all(t.ok for t in targets + bases):
            targets += bases
            return {"error": "; ".join(str(t.error) for t in targets if t.error)}
        runner = Runner([mock, *targets], pause_s=0.5 if quick else 1.0, log=log, settle_max_s=10 if quick else 30)
        runner.run(stream)
        runner.run(maxrate)
        targets += bases
        cpu = saturated(targets, mock, workdir / backend, rounds=rounds if quick else 2 * rounds, quick=quick)
    finally:
        for target in targets:
            for managed in reversed(target.procs):
                stop(managed)
        if backend != "sqlite":
            drop_schema(tag)
            if baseline is not None:
                drop_schema(f"{tag}_base")
    return {**summarize(runner, stream.key), **cpu}


def saturated(targets: list[Target], mock: Target, workdir: Path, rounds: int, quick: bool) -> dict[str, Any]:
    """CPU per short stream of each target's process tree, closed loop (wrk when installed, 50 in
    flight), the targets alternating round by round; medians, and the paired ratio per round."""
    wrk = shutil.which("wrk")
    duration = 3.0 if quick else 6.0
    per_round: dict[str, list[float]] = {t.name: [] for t in targets}
    rates: dict[str, list[float]] = {t.name: [] for t in targets}
    for rnd in range(rounds):
        for i in range(len(targets)):
            target = targets[(i + rnd) % len(targets)]
            sample = hop.measure(target, mock, hop.closed_spec(target, 50, duration), wrk, workdir, rnd)
            if sample.errors or not sample.completed:
                log(f"[gov] saturated {target.name}: errors {sample.errors}, {sample.completed} completed")
                return {"saturated_error": f"{target.name}: errors {sample.errors}"}
            per_round[target.name].append(sample.ms_per_stream(sample.target_cpu_s))
            rates[target.name].append(sample.completed / sample.wall_s)
            log(f"[gov] saturated round {rnd} {target.name}: {per_round[target.name][-1]:.3f} ms CPU per stream")
    off, on = per_round[OFF], per_round[ON]
    paired = [1 - a / b for a, b in zip(off, on, strict=True)]
    # Streams per second at saturation: this also counts what the targets' CPU does not (the
    # database and Redis servers', the mock's and wrk's share of the same cores).
    throughput = [1 - b / a for a, b in zip(rates[OFF], rates[ON], strict=True)]
    # what governance adds to one stream, in microseconds of CPU (median of the paired rounds),
    # for this build and the baseline's when there is one
    added_us: dict[str, float] = {}
    for off_name, on_name in PAIRS:
        if on_name in per_round:
            pairs = zip(per_round[off_name], per_round[on_name], strict=True)
            added_us[on_name] = 1000 * statistics.median(b - a for a, b in pairs)
    baseline: dict[str, Any] = {}
    if BASE_ON in per_round:
        base_paired = [1 - a / b for a, b in zip(per_round[BASE_OFF], per_round[BASE_ON], strict=True)]
        baseline = {
            "baseline_capacity_drop_pct": 100 * statistics.median(base_paired),
            "baseline_capacity_drop_rounds_pct": [100 * x for x in base_paired],
        }
    return {
        **baseline,
        "governance_us_per_stream": added_us,
        "saturated_ms_per_stream": {name: statistics.median(v) for name, v in per_round.items()},
        "saturated_rounds": per_round,
        "capacity_drop_pct": 100 * statistics.median(paired),
        "capacity_drop_rounds_pct": [100 * x for x in paired],
        "saturated_streams_per_s": {name: statistics.median(v) for name, v in rates.items()},
        "saturated_rate_rounds": rates,
        "throughput_drop_pct": 100 * statistics.median(throughput),
        "saturated_client": "wrk" if wrk else "bench.closedloop",
    }


def summarize(runner: Runner, stream_key: str) -> dict[str, Any]:
    out: dict[str, Any] = {"max_rate": runner.max_rates, "lowest_fail": runner.lowest_fails, "rounds": {}}
    for name in (OFF, ON, "direct"):
        runs = [r for r in runner.records if r.scenario == stream_key and r.target == name and r.load]
        out["rounds"][name] = [
            {"ttfb_p50": r.load["ttfb_ms"]["p50"], "total_p50": r.load["total_ms"]["p50"],
             "success_pct": r.load["success_pct"], "cpu_s_per_1k": r.cpu_s_per_1k}
            for r in runs
        ]
        if runs:
            out[name] = {
                "ttfb_p50_ms": statistics.median(r.load["ttfb_ms"]["p50"] for r in runs),
                "total_p50_ms": statistics.median(r.load["total_ms"]["p50"] for r in runs),
                "cpu_s_per_1k": statistics.median(r.cpu_s_per_1k for r in runs),
            }
    if OFF in out and ON in out:
        out["added_ttfb_p50_ms"] = out[ON]["ttfb_p50_ms"] - out[OFF]["ttfb_p50_ms"]
        out["added_total_p50_ms"] = out[ON]["total_p50_ms"] - out[OFF]["total_p50_ms"]
    off_rate, on_rate = runner.max_rates.get(OFF, 0.0), runner.max_rates.get(ON, 0.0)
    if off_rate:
        out["rate_drop_pct"] = 100 * (off_rate - on_rate) / off_rate
    return out


def render(results: dict[str, Any], meta: dict[str, Any]) -> str:
    lines = [
        "# Governance on versus off",
        "",
        f"commit `{meta['commit'][:10]}`{' (dirty)' if meta['dirty'] else ''}, {meta['date']}, {meta['machine']},"
        f" {meta['workers']} workers, command `{meta['command']}`",
        "",
        "| store | p50 TTFB off / on (ms) | added | p50 total off / on (ms) | added | CPU s/1k off / on"
        " | max short-stream rate off / on (req/s) | drop | CPU ms per short stream at saturation off / on"
        " | capacity drop | streams/s at saturation off / on | drop | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for backend, r in results.items():
        if "error" in r:
            lines.append(f"| {backend} | failed: {r['error']} | | | | | | | | | | | |")
            continue
        added = max(r["added_ttfb_p50_ms"], r["added_total_p50_ms"])
        drop = r.get("rate_drop_pct", float("nan"))
        capacity = r.get("capacity_drop_pct", float("nan"))
        throughput = r.get("throughput_drop_pct", float("nan"))
        # every measure of the rate must hold (a figure not measured is NaN, and fails)
        rate_ok = drop <= 10.0 and capacity <= 10.0 and throughput <= 10.0
        verdict = "PASS" if added <= 1.0 and rate_ok else "MISS"
        if rate_ok and r.get("lowest_fail", {}).get(ON, 0) is None:
            # "on" passed every probe it was given: its rate is a lower bound, the drop unknown
            verdict = "rate not measured (gov-on passed every probe; run without --quick)"
        # The same target's p50 moving more than a few ms between rounds: the machine (other
        # processes) decides the figures, and a 1 ms difference cannot be seen.
        rounds = [x["ttfb_p50"] for x in r["rounds"].get(OFF, [])]
        spread = max(rounds) - min(rounds) if rounds else 0.0
        if spread > NOISE_MS:
            verdict = f"NOISY (gov-off p50 moved {spread:.0f} ms between rounds)"
        lines.append(
            f"| {backend} | {r[OFF]['ttfb_p50_ms']:.2f} / {r[ON]['ttfb_p50_ms']:.2f} | {r['added_ttfb_p50_ms']:+.2f}"
            f" | {r[OFF]['total_p50_ms']:.2f} / {r[ON]['total_p50_ms']:.2f} | {r['added_total_p50_ms']:+.2f}"
            f" | {r[OFF]['cpu_s_per_1k']:.2f} / {r[ON]['cpu_s_per_1k']:.2f}"
            f" | {r['max_rate'].get(OFF, 0):.0f} / {r['max_rate'].get(ON, 0):.0f} | {drop:.1f}%"
            f" | {_saturated_text(r)} | {capacity:.1f}% | {_rate_text(r)} | {throughput:.1f}% | {verdict} |"
        )
    lines += [
        "",
        "p50s are the median over the interleaved rounds at 200 req/s; the per-round figures are in governance.json.",
        "Targets: added p50 within 1 ms, highest sustained short-stream rate at most 10% lower.",
        "The rate is measured twice: by probing rates with scenario 3's criterion (in full mode down to 5%"
        " steps; one probe per rate, so p99 noise near the ceiling can move it a step), and as the CPU one"
        " short stream costs the targets' process trees at saturation (wrk, 50 in flight, rounds alternating"
        " off and on; the capacity drop is the median over rounds of 1 - off/on), and as the streams per"
        " second completed in those rounds, which also count what the database and Redis servers, the mock"
        " and wrk take from the same cores. The verdict needs all three.",
        "`python -m bench.governance_micro` measures the admission path alone, in process (governance_micro.json).",
    ]
    for backend, r in results.items():
        if "baseline_capacity_drop_pct" in r:
            cpu, added = r["saturated_ms_per_stream"], r["governance_us_per_stream"]
            lines.append(
                f"{backend}, beside the baseline (`--baseline-src`, same saturated rounds): CPU ms per short stream"
                f" off / on {cpu[BASE_OFF]:.3f} / {cpu[BASE_ON]:.3f}, capacity drop"
                f" {r['baseline_capacity_drop_pct']:.1f}% (this build {r['capacity_drop_pct']:.1f}%); governance adds"
                f" {added[BASE_ON]:.0f} us of CPU per stream there, {added[ON]:.0f} us here."
            )
    return "\n".join(lines) + "\n"


def _saturated_text(r: dict[str, Any]) -> str:
    cpu = r.get("saturated_ms_per_stream")
    if not cpu:
        return f"not measured ({r.get('saturated_error', 'no samples')})"
    return f"{cpu.get(OFF, float('nan')):.3f} / {cpu.get(ON, float('nan')):.3f}"


def _rate_text(r: dict[str, Any]) -> str:
    rates = r.get("saturated_streams_per_s")
    if not rates:
        return "not measured"
    return f"{rates.get(OFF, float('nan')):.0f} / {rates.get(ON, float('nan')):.0f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.governance", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="shorter runs")
    parser.add_argument("--backends", default="sqlite,postgres", help="comma list of sqlite,postgres")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds at 200 req/s")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "results")
    parser.add_argument(
        "--baseline-src", type=Path, default=None,
        help="another sluicegate source tree (its src/), run gov-off and gov-on beside this one in the saturated rounds",
    )  # fmt: skip
    args = parser.parse_args(argv)
    litellm_env.CACHE_DIR.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="gov-", dir=litellm_env.CACHE_DIR))
    log(f"[gov] logs and data in {workdir}")
    mock = start_mock(workdir)
    results: dict[str, Any] = {}
    try:
        if not mock.ok:
            log(f"[gov] mock upstream failed: {mock.error}")
            return 1
        for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
            results[backend] = measure(
                backend, workdir, mock, args.workers, args.quick, args.rounds, args.baseline_src
            )
    finally:
        mock.stop()
    meta = {
        **git_meta(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "workers": args.workers,
        "command": "python -m bench.governance " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "governance.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    report = render(results, meta)
    (args.out / "governance.md").write_text(report)
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
