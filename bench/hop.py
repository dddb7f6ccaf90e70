"""``python -m bench.hop``: CPU cost of one proxied short stream, against the mock that serves it.

Short streams (20 chunks, no delay, as in scenario 3) at a fixed concurrency (closed loop, default
50 in flight). For every target the CPU seconds (user + system) of its own process tree are divided
by the streams completed in the same window, and compared with the mock's per-stream CPU when it is
called directly. Targets: ``direct`` (the mock alone), ``bare`` (bench/bare_proxy.py, a byte
forwarder: the floor of a Python hop), ``sluicegate`` (one worker; its streams take the byte relay),
``sluicegate-translated`` (the same with ``passthrough: false``) and, on request, ``portkey``.
Rounds are interleaved and the median is reported. Results: ``bench/results/hop.md`` and ``hop.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.closedloop import ClosedResult, ClosedSpec, run_wrk
from bench.processes import tree_cpu_s
from bench.scenarios import REPO_ROOT, request_body
from bench.targets import (
    BARE,
    BASELINE,
    DIRECT,
    PORTKEY,
    SLUICEGATE,
    Target,
    start_bare,
    start_mock,
    start_portkey,
    start_sluicegate,
)

TRANSLATED = "sluicegate-translated"  # the same build with `passthrough: false`: no byte relay
HOP_TARGETS = (DIRECT, BARE, SLUICEGATE, TRANSLATED, PORTKEY)
MODEL = "mock-c20-t0"


@dataclass
class Sample:
    """One measured window on one target."""

    target: str
    round: int
    client: str
    completed: int
    errors: dict[str, int]
    wall_s: float
    target_cpu_s: float
    mock_cpu_s: float
    client_cpu_s: float

    def ms_per_stream(self, cpu_s: float) -> float:
        return 1000.0 * cpu_s / self.completed if self.completed else float("nan")


@dataclass
class Row:
    """A target's medians over its rounds."""

    target: str
    rounds: int
    streams_per_s: float
    target_ms: float
    target_ms_min: float
    target_ms_max: float
    mock_ms: float
    client_ms: float
    errors: int

    def ratio_to(self, mock_ms: float) -> float:
        return self.target_ms / mock_ms if mock_ms else float("nan")


def summarise(samples: list[Sample]) -> list[Row]:
    rows = []
    for name in dict.fromkeys(s.target for s in samples):
        mine = [s for s in samples if s.target == name and s.completed]
        if not mine:
            continue
        target_ms = [s.ms_per_stream(s.target_cpu_s) for s in mine]
        rows.append(
            Row(
                target=name,
                rounds=len(mine),
                streams_per_s=statistics.median(s.completed / s.wall_s for s in mine),
                target_ms=statistics.median(target_ms),
                target_ms_min=min(target_ms),
                target_ms_max=max(target_ms),
                mock_ms=statistics.median(s.ms_per_stream(s.mock_cpu_s) for s in mine),
                client_ms=statistics.median(s.ms_per_stream(s.client_cpu_s) for s in mine),
                errors=sum(sum(s.errors.values()) for s in samples if s.target == name),
            )
        )
    return rows


def render(rows: list[Row], meta: dict[str, Any]) -> str:
    direct = next((r for r in rows if r.target == DIRECT), None)
    mock_ms = direct.target_ms if direct else float("nan")
    out = [
        "# Hop cost: CPU per short stream",
        "",
        f"- sluicegate code: `src/` as of commit `{meta.get('src_commit')}` (the last to change it), "
        f"measured from `{meta.get('commit')}`{' with a dirty work tree' if meta.get('dirty') else ''}; "
        f"date: {meta.get('date')}; machine: {meta.get('machine')}",
        f"- load: `{meta.get('client')}`, {meta.get('concurrency')} streams in flight (closed loop), "
        f"{meta.get('duration_s')} s per window, {meta.get('rounds')} interleaved rounds, medians; "
        f"each stream is 20 content chunks with no delay (`{MODEL}`, usage included: 24 SSE events)",
        "- CPU = user + system seconds of the target's own process tree in the window, divided by the "
        "streams completed in it; for `direct` the target is the mock itself. sluicegate runs one worker.",
        f"- command: `{meta.get('command')}`" + (f"; {meta['note']}" if meta.get("note") else ""),
        f"- load average before the run (1/5/15 min): {meta.get('loadavg_before', '-')}; the machine is "
        "shared, so a busy neighbour shows as a wider range over rounds",
        "",
        "| target | streams/s | CPU ms / stream | range over rounds | x mock (direct) | mock CPU ms / stream "
        "in the same run | client CPU ms / stream | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        out.append(
            f"| {r.target} | {r.streams_per_s:,.0f} | {r.target_ms:.3f} | {r.target_ms_min:.3f}-{r.target_ms_max:.3f} "
            f"| {_ratio_text(r.ratio_to(mock_ms))} | {r.mock_ms:.3f} | {r.client_ms:.3f} | {r.errors} |"
        )
    for name, error in meta.get("failed", {}).items():
        out.append(f"| {name} | failed: {error} |||||||")
    out += [
        "",
        "x mock = the target's CPU per stream divided by the mock's when it is called directly: the cost of "
        "the hop in units of the upstream's own work. `bare` (bench/bare_proxy.py: uvicorn + uvloop + "
        "httptools, aiohttp, no parsing) is the floor of a Python hop; what a gateway costs above it is "
        "its own work.",
    ]
    return "\n".join(out) + "\n"


def _ratio_text(ratio: float) -> str:
    return "-" if math.isnan(ratio) else f"{ratio:.2f}"


def _python_client(spec: ClosedSpec) -> ClosedResult:
    bound = spec.duration_s + spec.timeout_s + 30
    done = subprocess.run(
        [sys.executable, "-m", "bench.closedloop", json.dumps(asdict(spec))],
        capture_output=True,
        text=True,
        timeout=bound,
        cwd=REPO_ROOT,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"closed-loop client failed: {done.stderr[-400:]}")
    return ClosedResult(**json.loads(done.stdout.strip().splitlines()[-1]))


def closed_spec(target: Target, concurrency: int, duration_s: float) -> ClosedSpec:
    return ClosedSpec(
        url=target.chat_url,
        body=request_body(MODEL, stream=True),
        concurrency=concurrency,
        duration_s=duration_s,
        headers=target.headers,
        timeout_s=10.0,
    )


def measure(
    target: Target, mock: Target, spec: ClosedSpec, wrk: str | None, workdir: Path, rnd: int
) -> Sample:
    target_cpu0, mock_cpu0 = tree_cpu_s(target.root_pid), tree_cpu_s(mock.root_pid)
    result = run_wrk(wrk, spec, workdir) if wrk else _python_client(spec)
    target_cpu = tree_cpu_s(target.root_pid) - target_cpu0
    mock_cpu = tree_cpu_s(mock.root_pid) - mock_cpu0
    return Sample(
        target.name, rnd, result.client, result.completed, result.errors, result.wall_s,
        target_cpu, mock_cpu, result.client_cpu_s,
    )  # fmt: skip


def _git(*args: str) -> str:
    try:
        done = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
    except OSError:
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.hop", description=__doc__)
    parser.add_argument(
        "--targets", default=f"{DIRECT},{BARE},{SLUICEGATE}", help=f"of {','.join(HOP_TARGETS)}"
    )
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measured window")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--client", choices=("auto", "wrk", "python"), default="auto",
                        help="auto: wrk when on PATH (apt-get install wrk), else bench.closedloop")  # fmt: skip
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "results")
    parser.add_argument(
        "--baseline-src", type=Path, default=None,
        help=f"a `src` directory of another sluicegate build: adds target {BASELINE} (run with that "
        "PYTHONPATH), interleaved with the others, so a change is measured against its baseline in the same run",
    )  # fmt: skip
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from bench.__main__ import machine

    args = parse_args(argv)
    wanted = [t.strip() for t in args.targets.split(",") if t.strip()]
    if args.baseline_src is not None:
        wanted.append(BASELINE)
    if set(wanted) - set(HOP_TARGETS) - {BASELINE}:
        raise SystemExit(f"unknown targets: {set(wanted) - set(HOP_TARGETS)}")
    wrk = shutil.which("wrk") if args.client in ("auto", "wrk") else None
    if args.client == "wrk" and wrk is None:
        raise SystemExit("wrk is not on PATH (Debian: apt-get install wrk), or use --client python")
    cache = REPO_ROOT / "bench" / ".cache"
    cache.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="hop-", dir=cache))
    print(f"[hop] logs in {workdir}", file=sys.stderr)
    loadavg_before = " / ".join(f"{v:.2f}" for v in os.getloadavg())
    mock = start_mock(workdir)
    targets: list[Target] = []
    failed: dict[str, str] = {}
    samples: list[Sample] = []
    try:
        starters = {
            DIRECT: lambda: mock,
            BARE: lambda: start_bare(workdir, mock.base_url),
            SLUICEGATE: lambda: start_sluicegate(workdir, mock.base_url, [MODEL], 1),
            TRANSLATED: lambda: start_sluicegate(
                workdir, mock.base_url, [MODEL], 1, name=TRANSLATED, entry={"passthrough": False}
            ),
            PORTKEY: lambda: start_portkey(workdir, mock.base_url, [MODEL], 1),
            BASELINE: lambda: start_sluicegate(
                workdir, mock.base_url, [MODEL], 1, name=BASELINE,
                env={"PYTHONPATH": str(Path(args.baseline_src).resolve())},
            ),
        }  # fmt: skip
        for name in wanted:
            target = starters[name]() if mock.ok else Target(name, error=f"mock failed: {mock.error}")
            if target.ok:  # every answer checked before anything is measured (wrk reads no bodies)
                check = _python_client(closed_spec(target, args.concurrency, 2.0))
                if check.errors or not check.completed:
                    target.error = f"warm-up failed: {check.completed} completed, errors {check.errors}"
            print(f"[hop] {name}: {'ready' if target.ok else target.error}", file=sys.stderr)
            if target.ok:
                targets.append(target)
            else:
                failed[name] = str(target.error)
        for rnd in range(args.rounds):
            for i in range(len(targets)):
                target = targets[(i + rnd) % len(targets)]
                time.sleep(1.0)
                sample = measure(
                    target, mock, closed_spec(target, args.concurrency, args.duration), wrk, workdir, rnd
                )
                samples.append(sample)
                print(
                    f"[hop] round {rnd} {target.name:<10} {sample.completed / sample.wall_s:7.0f} streams/s "
                    f"{sample.ms_per_stream(sample.target_cpu_s):.3f} ms/stream (mock "
                    f"{sample.ms_per_stream(sample.mock_cpu_s):.3f}) errors {sample.errors or '-'}",
                    file=sys.stderr,
                )
    finally:
        for target in targets:
            if target is not mock:
                target.stop()
        mock.stop()
    meta = {
        "commit": _git("rev-parse", "HEAD") or "unknown",
        "src_commit": _git("log", "-1", "--format=%H", "--", "src", "pyproject.toml") or "unknown",
        "dirty": bool(_git("status", "--porcelain", "--", "src", "pyproject.toml")),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "client": samples[0].client if samples else ("wrk" if wrk else "bench.closedloop"),
        "concurrency": args.concurrency,
        "duration_s": args.duration,
        "rounds": args.rounds,
        "command": "python -m bench.hop " + " ".join(sys.argv[1:] if argv is None else argv),
        "failed": failed,
        "loadavg_before": loadavg_before,
    }
    rows = summarise(samples)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "hop.md").write_text(render(rows, meta))
    raw = {"meta": meta, "rows": [asdict(r) for r in rows], "samples": [asdict(s) for s in samples]}
    (args.out / "hop.json").write_text(json.dumps(raw, indent=2) + "\n")
    print(render(rows, meta))
    return 0 if rows else 1


if __name__ == "__main__":
    sys.exit(main())
