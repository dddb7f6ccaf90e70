"""``python -m bench.cache``: the response cache on a repeated-request workload.

A mock OpenAI upstream answers each chat completion after ``--upstream-ms``; the gateway's model
entry has `cache:`. ``--requests`` requests (temperature 0) are drawn from ``--prompts`` distinct
prompts with Zipf-like weights (a few asked often, most seldom), sent one at a time; the report
gives the hit rate and the p50 latency of hits and of misses, whole and streamed.
Writes ``cache.md`` into ``bench/results/``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import orjson
import yaml
from aiohttp import web

from bench.processes import free_port, spawn, stop, wait_http_ok
from bench.scenarios import REPO_ROOT

RESULTS = REPO_ROOT / "bench" / "results"


def mock_chat(port: int, delay_s: float) -> None:
    async def chat(request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        await asyncio.sleep(delay_s)
        text = str(body["messages"][-1]["content"])
        head = {"id": "c", "created": 1, "model": body["model"]}
        usage = {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10}
        if not body.get("stream"):
            message = {"role": "assistant", "content": text}
            answer = {**head, "object": "chat.completion", "usage": usage,
                      "choices": [{"index": 0, "message": message, "finish_reason": "stop"}]}
            return web.Response(body=orjson.dumps(answer), content_type="application/json")
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for word in text.split():
            delta = {"index": 0, "delta": {"content": word + " "}, "finish_reason": None}
            await response.write(b"data: " + orjson.dumps({**head, "object": "chat.completion.chunk", "choices": [delta]}) + b"\n\n")
        end = {"index": 0, "delta": {}, "finish_reason": "stop"}
        await response.write(b"data: " + orjson.dumps({**head, "object": "chat.completion.chunk", "choices": [end], "usage": usage}) + b"\n\n")
        await response.write(b"data: [DONE]\n\n")
        return response

    async def serve() -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", chat)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        await asyncio.Event().wait()

    threading.Thread(target=lambda: asyncio.run(serve()), daemon=True).start()


async def drive(url: str, key: str, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    rng = random.Random(1)
    prompts = [f"prompt number {i} asks about lighthouses" for i in range(args.prompts)]
    weights = [1 / (rank + 1) for rank in range(args.prompts)]
    results: dict[str, dict[str, float]] = {}
    async with httpx.AsyncClient(timeout=60, headers={"Authorization": f"Bearer {key}"}) as client:
        for stream in (False, True):
            times: dict[str, list[float]] = {"hit": [], "miss": []}
            for _ in range(args.requests):
                prompt = rng.choices(prompts, weights)[0]
                body = {"model": "cached", "temperature": 0, "stream": stream,
                        "messages": [{"role": "user", "content": prompt + (" (streamed)" if stream else "")}]}
                began = time.perf_counter()
                async with client.stream("POST", url, json=body) as response:
                    async for _ in response.aiter_bytes():
                        pass
                times[response.headers["x-sluicegate-cache"]].append(time.perf_counter() - began)
            total = len(times["hit"]) + len(times["miss"])
            results["stream" if stream else "whole"] = {
                "hit_rate": len(times["hit"]) / total,
                "hit_p50_ms": statistics.median(times["hit"]) * 1000,
                "miss_p50_ms": statistics.median(times["miss"]) * 1000,
            }
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--prompts", type=int, default=50)
    parser.add_argument("--upstream-ms", type=float, default=200.0)
    args = parser.parse_args(argv)
    mock_port, port = free_port(), free_port()
    mock_chat(mock_port, args.upstream_ms / 1000)
    with tempfile.TemporaryDirectory(prefix="bench-cache-") as tmp:
        data_dir = Path(tmp)
        config = {"models": [{"name": "cached", "provider": "openai", "base_url": f"http://127.0.0.1:{mock_port}/v1",
                              "api_key": "x", "cache": {"ttl_s": 3600}}]}
        (data_dir / "sluicegate.yaml").write_text(yaml.safe_dump(config))
        made = subprocess.run(
            [sys.executable, "-m", "sluicegate.cli", "keys", "create", "--name", "bench", "--data-dir", str(data_dir)],
            capture_output=True, text=True, timeout=120, check=True,
        )
        key = made.stdout.strip().splitlines()[-1]
        server = spawn(
            "sluicegate",
            [sys.executable, "-m", "sluicegate.cli", "serve", "--port", str(port), "--data-dir", str(data_dir),
             "--config", str(data_dir / "sluicegate.yaml"), "--log-level", "warning"],
            data_dir / "server.log",
        )
        try:
            wait_http_ok(f"http://127.0.0.1:{port}/health", server, 60)
            results = asyncio.run(drive(f"http://127.0.0.1:{port}/v1/chat/completions", key, args))
        finally:
            stop(server)
    lines = [
        "# The response cache on a repeated-request workload",
        "",
        f"`python -m bench.cache --requests {args.requests} --prompts {args.prompts} --upstream-ms {args.upstream_ms:g}`:"
        f" requests one at a time, prompts drawn with weights 1/rank; load average {os.getloadavg()[0]:.1f}.",
        "",
        "| answer | hit rate | hit p50 ms | miss p50 ms |",
        "|---|---:|---:|---:|",
    ]
    for name, r in results.items():
        lines.append(f"| {name} | {r['hit_rate']:.0%} | {r['hit_p50_ms']:.2f} | {r['miss_p50_ms']:.1f} |")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "cache.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
