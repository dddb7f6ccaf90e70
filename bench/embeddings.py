"""``python -m bench.embeddings``: `/v1/embeddings` throughput and tail latency.

Each request embeds a batch of 16 short texts. Four paths, each driven by the same closed loop
(``--concurrency`` clients, each sending its next request when the last is answered, for
``--seconds``), one after the other:

* ``embedded direct``: the ONNX model called in this process (the floor for the embedded path);
* ``embedded via gateway``: the same model inside a running sluicegate (auth, governance, ledger);
* ``mock direct``: a minimal OpenAI-format embeddings server on raw aiohttp;
* ``mock via gateway``: that server as an OpenAI-compatible upstream of sluicegate.

Writes ``embeddings.md`` and ``embeddings.json`` into ``bench/results/``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import yaml
from aiohttp import web

from bench.processes import free_port, spawn, stop, wait_http_ok
from bench.scenarios import REPO_ROOT

TEXTS = [f"Short text number {i} about lighthouses, ships and the sea." for i in range(16)]
RESULTS = REPO_ROOT / "bench" / "results"


def new_key(data_dir: Path) -> str:
    """A key made by `sluicegate keys create` (the module, so it runs the code on PYTHONPATH)."""
    made = subprocess.run(
        [sys.executable, "-m", "sluicegate.cli", "keys", "create", "--name", "bench", "--data-dir", str(data_dir)],
        capture_output=True, text=True, timeout=120, check=True,
    )
    return made.stdout.strip().splitlines()[-1]


def mock_server(port: int) -> None:
    """An OpenAI-format embeddings server (3 numbers per input), on its own thread and loop."""

    async def embeddings(request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        data = [{"object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3]} for i in range(len(body["input"]))]
        usage = {"prompt_tokens": 8 * len(data), "total_tokens": 8 * len(data)}
        answer = {"object": "list", "data": data, "model": body["model"], "usage": usage}
        return web.Response(body=orjson.dumps(answer), content_type="application/json")

    async def serve() -> None:
        app = web.Application()
        app.router.add_post("/v1/embeddings", embeddings)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        await asyncio.Event().wait()

    threading.Thread(target=lambda: asyncio.run(serve()), daemon=True).start()


async def closed_loop(send: Callable[[], Awaitable[None]], concurrency: int, seconds: float) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def client() -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            began = time.perf_counter()
            try:
                await send()
            except Exception:
                errors += 1
                continue
            latencies.append(time.perf_counter() - began)

    began = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    elapsed = time.perf_counter() - began
    ordered = sorted(latencies)
    return {
        "requests": len(ordered),
        "errors": errors,
        "rps": len(ordered) / elapsed,
        "p50_ms": statistics.median(ordered) * 1000 if ordered else float("nan"),
        "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000 if ordered else float("nan"),
    }


def http_sender(client: httpx.AsyncClient, url: str, model: str, key: str | None) -> Callable[[], Awaitable[None]]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    body = {"model": model, "input": TEXTS, "encoding_format": "float"}

    async def send() -> None:
        response = await client.post(url, json=body, headers=headers)
        response.raise_for_status()
        assert len(response.json()["data"]) == len(TEXTS)

    return send


def direct_sender() -> Callable[[], Awaitable[None]]:
    from concurrent.futures import ThreadPoolExecutor

    from sluicegate.providers.embedded.model import BUNDLED_TOKENIZER, EmbeddingModel, bundled_model_path

    model = EmbeddingModel(bundled_model_path(), BUNDLED_TOKENIZER, 256, None)
    pool = ThreadPoolExecutor(max_workers=1)  # as the gateway runs it: one job at a time

    async def send() -> None:
        await asyncio.get_running_loop().run_in_executor(pool, lambda: model.embed(model.tokenize(TEXTS)).tolist())

    return send


async def run(args: argparse.Namespace, gateway_url: str, key: str, mock_url: str) -> dict[str, Any]:
    results: dict[str, Any] = {}
    limits = httpx.Limits(max_connections=args.concurrency * 2)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        paths: list[tuple[str, Callable[[], Awaitable[None]]]] = [
            ("embedded direct", direct_sender()),
            ("embedded via gateway", http_sender(client, gateway_url, "all-minilm-l6-v2", key)),
            ("mock direct", http_sender(client, mock_url, "mock", None)),
            ("mock via gateway", http_sender(client, gateway_url, "mock-embeddings", key)),
        ]
        for name, send in paths:
            await closed_loop(send, args.concurrency, 1.0)  # warm-up
            results[name] = await closed_loop(send, args.concurrency, args.seconds)
            print(f"{name:22} {results[name]['rps']:8.1f} req/s  p99 {results[name]['p99_ms']:7.1f} ms", flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args(argv)
    mock_port, port = free_port(), free_port()
    mock_server(mock_port)
    mock_url = f"http://127.0.0.1:{mock_port}/v1"
    with tempfile.TemporaryDirectory(prefix="bench-embeddings-") as tmp:
        data_dir = Path(tmp)
        config = {
            "models": [
                {"name": "all-minilm-l6-v2", "provider": "embedded"},
                {"name": "mock-embeddings", "provider": "openai", "mode": "embeddings", "base_url": mock_url, "api_key": "x"},
            ]
        }
        (data_dir / "sluicegate.yaml").write_text(yaml.safe_dump(config))
        key = new_key(data_dir)
        server = spawn(
            "sluicegate",
            [sys.executable, "-m", "sluicegate.cli", "serve", "--port", str(port), "--data-dir", str(data_dir),
             "--config", str(data_dir / "sluicegate.yaml"), "--log-level", "warning"],
            data_dir / "server.log",
        )
        try:
            wait_http_ok(f"http://127.0.0.1:{port}/health", server, 60)
            results = asyncio.run(run(args, f"http://127.0.0.1:{port}/v1/embeddings", key, mock_url + "/embeddings"))
        finally:
            stop(server)
    RESULTS.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()[0]  # a shared machine's other work shows in every figure
    meta = {"batch": len(TEXTS), "concurrency": args.concurrency, "seconds": args.seconds, "load_average": load}
    (RESULTS / "embeddings.json").write_text(json.dumps({**meta, "results": results}, indent=2) + "\n")
    lines = [
        "# /v1/embeddings: a batch of 16 short texts",
        "",
        f"`python -m bench.embeddings --seconds {args.seconds:g} --concurrency {args.concurrency}`"
        f" (closed loop, one gateway worker, 2 cores; load average {load:.1f} when it ended).",
        "",
        "| path | req/s | p50 ms | p99 ms | errors |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        lines.append(f"| {name} | {r['rps']:.1f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['errors']} |")
    (RESULTS / "embeddings.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
