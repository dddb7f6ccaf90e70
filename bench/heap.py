"""``python -m bench.heap [--src SRC] [--streams N]``: the Python heap one gateway worker holds per
streamed answer, by the package that allocated it (tracemalloc).

One worker (`serve --workers 1`) in front of the mock, started with ``bench/heap_site`` on its
PYTHONPATH: that folder's ``sitecustomize`` starts tracemalloc and snapshots the heap on SIGUSR1. A
snapshot before the load, then N streams of ``mock-c40-t40000`` (40 chunks over 40 s) opened over 5 s,
a second snapshot 9 s in, while all are held; the difference per stream, by package and by line.
``--src`` runs another build's ``src`` (as ``bench.hop --baseline-src``). Memory, not time: the
figures do not move with the neighbours' load, but the load is still 1 chunk/s per stream.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path

from bench.loadgen import LoadSpec
from bench.processes import tree_rss
from bench.scenarios import REPO_ROOT, request_body
from bench.targets import start_mock, start_sluicegate

MODEL = "mock-c40-t40000"
PACKAGES = ("aiohttp", "uvicorn", "asyncio", "sluicegate", "starlette", "httptools", "yarl", "multidict")
SITE = Path(__file__).resolve().parent / "heap_site"


def by_package(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot) -> dict[str, int]:
    groups: dict[str, int] = defaultdict(int)
    for stat in after.compare_to(before, "filename"):
        name = stat.traceback[0].filename
        groups[next((p for p in PACKAGES if f"/{p}/" in name), "other")] += stat.size_diff
    return dict(groups)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.heap", description=__doc__)
    parser.add_argument("--src", type=Path, default=REPO_ROOT / "src", help="the sluicegate `src` to run")
    parser.add_argument("--streams", type=int, default=500)
    args = parser.parse_args(argv)
    cache = REPO_ROOT / "bench" / ".cache"
    cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="heap-", dir=cache))
    mock = start_mock(work)
    env = {"PYTHONPATH": f"{SITE}:{args.src.resolve()}", "SG_TRACE": str(work)}
    gateway = start_sluicegate(work, mock.base_url, [MODEL], 1, env=env)
    load = None
    try:
        if not gateway.ok:
            raise SystemExit(f"sluicegate did not start: {gateway.error}")
        pid = gateway.root_pid
        time.sleep(2)
        spec = LoadSpec(
            url=gateway.chat_url, body=request_body(MODEL, True), rate=args.streams / 5, duration_s=5.0,
            headers=gateway.headers, timeout_s=60, max_connections=args.streams + 64,
        )  # fmt: skip
        rss0 = tree_rss(pid)
        os.kill(pid, signal.SIGUSR1)
        time.sleep(1.5)
        load = subprocess.Popen(
            [sys.executable, "-m", "bench.loadgen", json.dumps(asdict(spec))],
            cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(9)
        rss1 = tree_rss(pid)
        os.kill(pid, signal.SIGUSR1)
        time.sleep(4)
    finally:
        if load is not None:
            load.kill()
        gateway.stop()
        mock.stop()
    before = tracemalloc.Snapshot.load(str(work / "snap1.bin"))
    after = tracemalloc.Snapshot.load(str(work / "snap2.bin"))
    n = args.streams
    groups = by_package(before, after)
    print(f"{n} streams: RSS growth {(rss1 - rss0) / 1024 / n:.1f} KB/stream, heap {sum(groups.values()) / 1024 / n:.1f}")
    for name, size in sorted(groups.items(), key=lambda kv: -kv[1]):
        print(f"  {name:<10} {size / 1024 / n:6.2f} KB/stream")
    for stat in after.compare_to(before, "lineno")[:30]:
        where = stat.traceback[0]
        print(f"    {stat.size_diff / 1024 / n:6.2f} KB/stream {where.filename.split('site-packages/')[-1]}:{where.lineno}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
