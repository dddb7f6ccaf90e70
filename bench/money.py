"""``python -m bench.money``: what abusive requests can spend on a budget (issue 20, findings 1, 3).

In process (the app behind httpx's ASGI transport, SQLite), in front of a local OpenAI-wire
upstream on 127.0.0.1 that bills every request's prompt as OpenAI would: the o200k tokens of its
messages and tool definitions (and 1 completion token).

1. **Tools**: a key with a $0.30 budget sends 30 concurrent requests, each carrying 200 function
   definitions with 4 KB descriptions, to a model priced $1,000 per million tokens (the issue's
   figures: a request is worth $206) and then $1 per million ($0.21 a request): how many were
   admitted, what was spent, spend / budget.
2. **Fallbacks**: `cheap` ($1 per million, its upstream down) falls back to `pricey` ($100 per
   million): what 10 requests cost against what `pricey` charges for them; and for a key allowed
   only `cheap`, how many were answered by `pricey`.

Run it against other code by putting that code's `src` first: ``PYTHONPATH=/work/main/src
python -m bench.money`` (the figures before a change) and ``PYTHONPATH=src python -m bench.money``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import tempfile
from pathlib import Path
from typing import Any

import httpx
import orjson
from aiohttp import web

BUDGET_USD = 0.30
NANOS = 1_000_000_000


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class BillingUpstream:
    """Answers whole chat completions at once, billing the prompt's o200k tokens."""

    def __init__(self) -> None:
        import bpe_openai

        self.encoding = bpe_openai.get_encoding("o200k_base")
        self.billed: list[int] = []
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> str:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._chat)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        self.port = _free_port()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        return f"http://127.0.0.1:{self.port}/v1"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    async def _chat(self, request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        text = orjson.dumps([body.get("messages"), body.get("tools"), body.get("functions")]).decode()
        prompt = len(self.encoding.encode_ordinary(text))
        self.billed.append(prompt)
        await asyncio.sleep(0.2)  # the answer takes a while: the requests overlap
        answer = {
            "id": "chatcmpl-bench", "object": "chat.completion", "created": 1, "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": 1, "total_tokens": prompt + 1},
        }  # fmt: skip
        return web.json_response(answer)


def tools(count: int, description_chars: int) -> list[dict[str, Any]]:
    sentence = "Looks up the orders of a customer by name, date range and status. "
    return [
        {
            "type": "function",
            "function": {
                "name": f"tool_{i}",
                "description": (sentence * (description_chars // len(sentence) + 1))[:description_chars],
                "parameters": {"type": "object", "properties": {"query": {"type": "string"}}},
            },
        }
        for i in range(count)
    ]


async def _gateway(data_dir: Path, models: list[dict[str, Any]]) -> tuple[Any, httpx.AsyncClient]:
    from sluicegate.app import create_app
    from sluicegate.settings import Settings

    settings = Settings.model_validate(
        {"data_dir": str(data_dir), "models": models, "server": {"max_body_bytes": 64 * 1024 * 1024}}
    )
    app = create_app(settings)
    await app.state.gateway.start()
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway", timeout=120)
    return app.state.gateway, client


async def _spent(gateway: Any, key_id: str) -> tuple[float, list[dict[str, Any]]]:
    await gateway.wait_settled()
    await gateway.governance.ledger.flush()
    key = await gateway.store.get_key(key_id)
    return key.spent_nanos / NANOS, await gateway.store.recent(key_id=key_id, limit=1000)


async def tools_scenario(data_dir: Path, per_million: float) -> dict[str, Any]:
    upstream = BillingUpstream()
    base_url = await upstream.start()
    price = {"input": per_million, "output": per_million}
    gateway, client = await _gateway(data_dir, [{"name": "m", "provider": "openai", "base_url": base_url,
                                                 "api_key": "x", "price": price}])  # fmt: skip
    try:
        key, secret = await gateway.keys.create("abuser", budget_nanos=round(BUDGET_USD * NANOS))
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "tools": tools(200, 4096),
                "max_tokens": 16}  # fmt: skip
        headers = {"Authorization": f"Bearer {secret}"}
        answers = await asyncio.gather(
            *[client.post("/v1/chat/completions", json=body, headers=headers) for _ in range(30)]
        )
        spent, _ = await _spent(gateway, key.id)
        return {
            "price_usd_per_million_tokens": per_million,
            "requests": 30,
            "admitted": sum(1 for a in answers if a.status_code == 200),
            "refused_402": sum(1 for a in answers if a.status_code == 402),
            "upstream_billed_prompt_tokens_each": upstream.billed[0] if upstream.billed else None,
            "spent_usd": round(spent, 4),
            "budget_usd": BUDGET_USD,
            "spend_over_budget": round(spent / BUDGET_USD, 2),
        }
    finally:
        await client.aclose()
        await gateway.close()
        await upstream.stop()


async def fallback_scenario(data_dir: Path) -> dict[str, Any]:
    upstream = BillingUpstream()
    base_url = await upstream.start()
    down = f"http://127.0.0.1:{_free_port()}/v1"
    models = [
        {"name": "cheap", "provider": "openai", "base_url": down, "api_key": "x",
         "price": {"input": 1.0, "output": 1.0}, "fallbacks": ["pricey"]},
        {"name": "pricey", "provider": "openai", "base_url": base_url, "api_key": "x",
         "price": {"input": 100.0, "output": 100.0}},
    ]  # fmt: skip
    gateway, client = await _gateway(data_dir, models)
    try:
        body = {"model": "cheap", "messages": [{"role": "user", "content": "Tell me about rivers. " * 50}],
                "max_tokens": 16}  # fmt: skip
        key, secret = await gateway.keys.create("anyone", budget_nanos=100 * NANOS)
        for _ in range(10):
            await client.post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {secret}"})
        spent, rows = await _spent(gateway, key.id)
        due = sum(r["prompt_tokens"] * 100 + r["completion_tokens"] * 100 for r in rows) / 1_000_000
        _, only_secret = await gateway.keys.create("cheap-only", budget_nanos=100 * NANOS, models=("cheap",))
        before = len(upstream.billed)
        statuses = []
        for _ in range(10):
            answer = await client.post(
                "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {only_secret}"}
            )
            statuses.append(answer.status_code)
        return {
            "requests": 10,
            "rows_model_served_by_deployment": sorted({(r["model"], r["served_by"], r["deployment"]) for r in rows}),
            "billed_usd": round(spent, 6),
            "at_pricey_price_usd": round(due, 6),
            "billed_over_due": round(spent / due, 4) if due else None,
            "cheap_only_key_answered_by_pricey": len(upstream.billed) - before,
            "cheap_only_key_statuses": sorted(set(statuses)),
        }
    finally:
        await client.aclose()
        await gateway.close()
        await upstream.stop()


async def main_async() -> dict[str, Any]:
    results: dict[str, Any] = {}
    for per_million in (1000.0, 1.0):  # the price (one request is worth $206), and $0.21 a request
        with tempfile.TemporaryDirectory() as data_dir:
            results[f"tools at ${per_million:g}/M"] = await tools_scenario(Path(data_dir), per_million)
    with tempfile.TemporaryDirectory() as data_dir:
        results["fallbacks"] = await fallback_scenario(Path(data_dir))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=None, help="also write the figures here as JSON")
    args = parser.parse_args()
    results = json.dumps(asyncio.run(main_async()), indent=2)
    if args.out is not None:
        args.out.write_text(results + "\n")
    print(results)


if __name__ == "__main__":
    main()
