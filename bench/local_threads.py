"""``python -m bench.local_threads``: how many llama.cpp threads the embedded model should use.

For each setting of `n_threads` / `n_threads_batch` (and llama-server at the same `-t` / `-tb`
for an anchor), one stream then N streams of 128 greedy tokens, and meanwhile the event loop's
own latency: `GET /health` every 20 ms while the model computes. A thread count that starves the
event loop shows there (the tokens are computed but not sent), which tokens/s alone would hide.
Writes ``local_threads.json`` into the results folder.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench import litellm_env
from bench.local_concurrency import Target, concurrency_round, pct, warm
from bench.local_versus_server import server, sluicegate


async def health_probe(base: str, stop: asyncio.Event, every_s: float = 0.02) -> list[float]:
    """Milliseconds each `GET /health` took until `stop` is set."""
    took: list[float] = []
    async with httpx.AsyncClient() as client:
        while not stop.is_set():
            started = time.perf_counter()
            await client.get(f"{base}/health", timeout=30)
            took.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(every_s)
    return took


async def round_with_probe(target: Target, streams: int, max_tokens: int) -> dict[str, Any]:
    stop = asyncio.Event()
    base = target.base_url.removesuffix("/v1")
    probe = asyncio.ensure_future(health_probe(base, stop))
    try:
        result = await concurrency_round(target, streams, max_tokens)
    finally:
        stop.set()
    took = await probe
    result.update(health_ms_p50=pct(took, 0.5), health_ms_p99=pct(took, 0.99), health_ms_max=max(took, default=0.0))
    return result


def measure(target: Target, streams: list[int], max_tokens: int, label: str) -> list[dict[str, Any]]:
    asyncio.run(warm(target))
    rows = []
    for count in streams:
        row = asyncio.run(round_with_probe(target, count, max_tokens))
        row["setting"] = label
        print(
            f"  {label:<34} {count:2d} streams: {row['aggregate_tokens_per_s']:6.1f} tok/s, ttft p50"
            f" {row['ttft_ms_p50']:6.0f} ms, itl p50 {row['itl_ms_p50']:5.1f} p99 {row['itl_ms_p99']:6.1f},"
            f" /health p50 {row['health_ms_p50']:5.1f} p99 {row['health_ms_p99']:6.1f} max {row['health_ms_max']:6.1f}",
            file=sys.stderr, flush=True,
        )
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.local_threads", description=__doc__)
    parser.add_argument("--settings", default="1/1,2/2,1/2", help="n_threads/n_threads_batch pairs")
    parser.add_argument("--streams", default="1,8")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--parallel", type=int, default=8)
    parser.add_argument("--n-ctx", type=int, default=8192)
    parser.add_argument("--server", action="store_true", help="llama-server at the same threads too")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args(argv)
    streams = [int(n) for n in args.streams.split(",")]
    litellm_env.CACHE_DIR.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="threads-", dir=litellm_env.CACHE_DIR))
    result: dict[str, Any] = {"load_average_at_start": os.getloadavg()[0], "rows": []}
    for setting in args.settings.split(","):
        threads, batch = (int(part) for part in setting.split("/"))
        run = argparse.Namespace(n_ctx=args.n_ctx, parallel=args.parallel, threads=threads, threads_batch=batch)
        with sluicegate(workdir, run) as target:
            result["rows"] += measure(target, streams, args.max_tokens, f"sluicegate n_threads {threads}/{batch}")
        if args.server:
            with server(workdir, run) as target:
                result["rows"] += measure(target, streams, args.max_tokens, f"llama-server -t {threads} -tb {batch}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "local_threads.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
