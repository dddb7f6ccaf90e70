"""``python -m bench``: start the mock, the bare proxy, sluicegate, LiteLLM and Portkey, drive them with open-loop load, report.

Run from the repository root. ``--quick`` is the few-minute smoke benchmark; the default full set
takes about 20 minutes. Results go to ``bench/results/`` (results.md, results.json, latency.png).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench import litellm_env, portkey_env
from bench.loadgen import LoadSpec, run_load
from bench.report import Report, render_markdown, write_all
from bench.scenarios import REPO_ROOT, Runner, build_scenarios, request_body, select
from bench.targets import (
    ALL_TARGETS,
    BARE,
    BASELINE,
    DIRECT,
    LITELLM,
    PORTKEY,
    SLUICEGATE,
    Target,
    start_bare,
    start_litellm,
    start_mock,
    start_portkey,
    start_sluicegate,
)

SMOKE_MODEL = "mock-c5-t50"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def git_meta() -> dict[str, Any]:
    def git(*args: str) -> str:
        try:
            done = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
        except OSError:
            return ""
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "HEAD") or "unknown (no commit yet)"
    dirty = bool(git("status", "--porcelain", "--", "src", "pyproject.toml"))
    return {"commit": commit, "dirty": dirty}


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {model}, Python {platform.python_version()}"


def probe_spec(target: Target, stream: bool, rate: float, duration_s: float, timeout_s: float) -> LoadSpec:
    """A short load of the smoke model, streaming or not, against one target."""
    return LoadSpec(
        url=target.chat_url,
        body=request_body(SMOKE_MODEL, stream),
        rate=rate,
        duration_s=duration_s,
        headers=target.headers,
        timeout_s=timeout_s,
    )


def smoke(target: Target) -> str | None:
    """One streaming and one plain request end to end before measuring; returns an error or None."""
    for stream in (True, False):
        result = asyncio.run(run_load(probe_spec(target, stream, rate=4, duration_s=0.5, timeout_s=15)))
        if result.ok != result.scheduled:
            return f"smoke test ({'stream' if stream else 'non-stream'}) failed: {result.errors}"
    return None


async def _warm_all(targets: list[Target]) -> list[float]:
    async def warm(target: Target) -> float:
        results = []
        for stream in (True, False):
            results.append(await run_load(probe_spec(target, stream, rate=15, duration_s=1.5, timeout_s=5)))
        return min(r.success_pct for r in results)

    return list(await asyncio.gather(*(warm(t) for t in targets)))


def warm_up(targets: list[Target]) -> None:
    """Every worker of every target serves some traffic before anything is measured: lazy imports
    and first-request allocations (LiteLLM has many) must not land in the first scenario."""
    ready = [t for t in targets if t.ok]
    for target, pct in zip(ready, asyncio.run(_warm_all(ready)), strict=True):
        log(f"[bench] warm-up {target.name}: {pct:.0f}% success")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="reduced set, a few minutes")
    parser.add_argument("--scenarios", help="comma list: stream,nonstream,maxrate,memory (or 1,2,3,4)")
    parser.add_argument(
        "--targets", default=",".join(ALL_TARGETS), help=f"comma list of {','.join(ALL_TARGETS)}"
    )
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "results", help="results folder")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="gateway worker processes")
    parser.add_argument(
        "--baseline-src", type=Path, default=None,
        help=f"a `src` directory of another sluicegate build: adds target {BASELINE} (run with that "
        "PYTHONPATH) beside the others, so before and after are measured in one run",
    )  # fmt: skip
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    scenarios = select(build_scenarios(args.quick), args.scenarios)
    wanted = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = set(wanted) - set(ALL_TARGETS)
    if unknown:
        raise SystemExit(f"unknown targets: {', '.join(sorted(unknown))}")
    started = time.monotonic()
    litellm_env.CACHE_DIR.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="run-", dir=litellm_env.CACHE_DIR))
    models = sorted({s.model for s in scenarios} | {SMOKE_MODEL})
    log(f"[bench] logs and data in {workdir}")

    mock = start_mock(workdir)
    targets: list[Target] = []
    runner: Runner | None = None
    try:
        if not mock.ok:
            log(f"[bench] mock upstream failed to start: {mock.error}")
            return 1
        if DIRECT in wanted:
            targets.append(mock)
        starters = {BARE: start_bare, SLUICEGATE: start_sluicegate, LITELLM: start_litellm, PORTKEY: start_portkey}
        if args.baseline_src is not None:
            wanted.append(BASELINE)
            baseline_env = {"PYTHONPATH": str(args.baseline_src.resolve())}
            starters[BASELINE] = lambda workdir, base_url, models, workers: start_sluicegate(
                workdir, base_url, models, workers, name=BASELINE, env=baseline_env
            )
        with ThreadPoolExecutor(max_workers=len(starters)) as pool:
            futures = [
                pool.submit(start, workdir, mock.base_url, models, args.workers)
                for name, start in starters.items()
                if name in wanted
            ]
            targets += [f.result() for f in futures]
        for target in targets:
            if target.ok:
                target.error = smoke(target)
            log(f"[bench] target {target.name}: {'ready' if target.ok else 'FAILED: ' + str(target.error)}")
        warm_up(targets)
        log(f"[bench] start-up took {time.monotonic() - started:.0f}s")
        runner = Runner(
            targets, pause_s=0.3 if args.quick else 1.0, log=log, settle_max_s=6 if args.quick else 30
        )
        # Memory first: its "RSS before" is then the warmed idle footprint, not the high-water mark
        # that the overload probes of the other scenarios leave behind. The report keeps the 1-4 order.
        for scenario in sorted(scenarios, key=lambda s: s.kind != "memory"):
            runner.run(scenario)
    finally:
        for target in targets:
            if target is not mock:
                target.stop()
        mock.stop()

    local_path = args.out / "local_model.json"
    local = json.loads(local_path.read_text()) if local_path.exists() else None
    report = Report(
        meta={
            **git_meta(),
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "mode": "quick" if args.quick else "full",
            "machine": machine(),
            "workers": args.workers,
            "litellm": litellm_env.litellm_spec(),
            "portkey": portkey_env.describe(),
            "duration_s": round(time.monotonic() - started, 1),
            "workdir": str(workdir),
        },
        scenarios=scenarios,
        targets=targets,
        records=runner.records if runner else [],
        max_rates=runner.max_rates if runner else {},
        reference_p99_ms=runner.reference_p99_ms if runner else None,
        local_model=local,
    )
    paths = write_all(report, args.out)
    print(render_markdown(report))
    log(
        f"[bench] done in {time.monotonic() - started:.0f}s; wrote {', '.join(str(p) for p in paths.values())}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
