"""``python -m bench.governance_micro``: the admission path's own cost, in process, no HTTP.

On a loaded 2-core machine the end-to-end figures of ``bench.governance`` move by milliseconds
from run to run; this isolates what governance adds to one request: the wall time of `admit`
(limiter + atomic budget reservation, the only storage touched on the request path) and the CPU
time per request of admit + settle + the batched ledger writes (all threads of the process;
PostgreSQL's and Redis's own CPU is not included). Requests run sequentially, so latency is the
round trips and the work, not queueing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.governance import PG_URL, REDIS_URL, drop_schema
from bench.scenarios import REPO_ROOT


async def measure(backend: str, count: int, data_dir: Path, tag: str) -> dict[str, Any]:
    from sluicegate.core.events import Usage
    from sluicegate.core.exchange import Exchange
    from sluicegate.core.request import ChatRequest
    from sluicegate.gateway import Gateway
    from sluicegate.settings import Settings

    raw: dict[str, Any] = {
        "data_dir": str(data_dir),
        "models": [
            {"name": "m", "provider": "openai", "base_url": "http://127.0.0.1:9/v1", "price": {"input": 1, "output": 2}}
        ],
    }
    if backend == "postgres":
        raw["database"] = {"url": f"{PG_URL}?schema={tag}"}
        raw["redis"] = {"url": REDIS_URL, "prefix": tag + ":"}
    gateway = Gateway.build(Settings.model_validate(raw))
    await gateway.store.open()
    await gateway.keys.start()
    assert gateway.governance is not None
    await gateway.governance.start()
    key, _ = await gateway.keys.create("bench", budget_nanos=10**18, rpm=10**9, tpm=10**12)
    messages = [{"role": "user", "content": "Say hello to the benchmark."}]
    admit_s: list[float] = []

    async def one(i: int) -> None:
        chat = ChatRequest(model="m", messages=messages, raw={}, max_tokens=64)
        exchange = Exchange(
            request_id=f"req_{i}", door="chat_completions", key_id=key.id, model="m", request=chat,
            provider="openai", served_by="m", upstream_model="m", stream=True,
        )
        started = time.perf_counter()
        await gateway.admit(exchange)
        admit_s.append(time.perf_counter() - started)
        exchange.usage = Usage(12, 20)
        exchange.attempts = 1
        gateway.settle(exchange)

    for i in range(min(200, count)):  # warm-up: connections, statements, code paths
        await one(i)
    await gateway.governance.ledger.flush()
    admit_s.clear()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for i in range(count):
        await one(i)
    await asyncio.sleep(0)
    await gateway.governance.ledger.flush()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    totals = await gateway.store.ledger_totals()
    await gateway.close()
    ordered = sorted(admit_s)
    return {
        "requests": count,
        "admit_p50_us": statistics.median(ordered) * 1e6,
        "admit_p99_us": ordered[int(0.99 * (len(ordered) - 1))] * 1e6,
        "cpu_us_per_request": cpu / count * 1e6,
        "wall_us_per_request": wall / count * 1e6,
        "ledger_rows": totals["rows"],
    }


def _run(work: Any) -> Any:
    """On uvloop, as the gateway runs."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(work)
    return uvloop.run(work)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.governance_micro", description=__doc__)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "results")
    args = parser.parse_args(argv)
    results: dict[str, Any] = {}
    for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
        tag = f"bench_micro_{secrets.token_hex(4)}"
        with tempfile.TemporaryDirectory() as tmp:
            try:
                results[backend] = _run(measure(backend, args.requests, Path(tmp), tag))
            finally:
                if backend == "postgres":
                    drop_schema(tag)
        r = results[backend]
        print(
            f"{backend:<9} admit p50 {r['admit_p50_us']:7.0f} us  p99 {r['admit_p99_us']:7.0f} us  "
            f"CPU {r['cpu_us_per_request']:6.0f} us/request (admit + settle + ledger)  rows {r['ledger_rows']}",
            flush=True,
        )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "governance_micro.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
