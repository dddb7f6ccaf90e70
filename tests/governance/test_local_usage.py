"""A client that leaves the embedded model's answer (streamed or whole) is billed for what it
generated, counted with the model's own tokenizer (the model sends no usage when it is stopped)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

from tests.governance.support import admin_key_of
from tests.support.inprocess import in_process, settings_for
from tests.support.server import Gateway


def test_leaving_a_local_stream_is_counted_with_the_local_tokenizer(gateway: Gateway) -> None:
    admin = {"Authorization": f"Bearer {admin_key_of(gateway)}"}
    with httpx.Client(base_url=gateway.base_url, timeout=120) as http:
        made = http.post("/admin/keys", json={"name": "local-leaver"}, headers=admin).json()
        body = {
            "model": gateway.model,
            "messages": [{"role": "user", "content": "Count from one to one hundred in words."}],
            "stream": True,
            "max_tokens": 200,
            "temperature": 0,
        }
        with http.stream(
            "POST", "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {made['secret']}"}
        ) as response:
            assert response.status_code == 200
            contents = 0
            for line in response.iter_lines():
                if '"content":"' in line and '"content":""' not in line:
                    contents += 1
                if contents >= 3:
                    break  # leave while the model is still generating
        deadline = time.monotonic() + 30
        while True:
            rows = http.get("/admin/requests", params={"key_id": made["id"]}, headers=admin).json()["data"]
            if rows or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    (row,) = rows
    assert row["client_gone"] is True and row["status"] == 499
    assert row["provider"] == "local"
    assert row["usage_source"] == "tokenizer"
    assert 3 <= row["completion_tokens"] < 200
    assert row["prompt_tokens"] > 10  # the chat template's tokens, counted exactly
    assert row["cost_usd"] == 0  # the embedded model has no price



async def test_leaving_a_whole_local_answer_is_billed_the_tokens_generated_by_then(tmp_path: Path) -> None:
    """A non-streamed request: the model is stopped when the client hangs up, and the row counts
    what it had generated (before: 0 tokens). The client hangs up once the model has written."""
    async with in_process(settings_for(tmp_path, [{"name": "local", "provider": "local"}])) as gw:
        made, secret = await gw.gateway.keys.create("local-whole-leaver")
        body = {
            "model": "local",
            "messages": [{"role": "user", "content": "Write a very long story about a lighthouse keeper."}],
            "max_tokens": 2000,
            "temperature": 0,
        }
        payload = orjson.dumps(body)
        scope: dict[str, Any] = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
            "path": "/v1/chat/completions", "raw_path": b"/v1/chat/completions", "root_path": "", "query_string": b"",
            "headers": [(b"content-type", b"application/json"), (b"authorization", f"Bearer {secret}".encode())],
            "client": ("127.0.0.1", 50000), "server": ("gateway", 80),
        }  # fmt: skip
        incoming = [{"type": "http.request", "body": payload, "more_body": False}]
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            if incoming:
                return incoming.pop(0)
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:  # hang up once the model has written something
                exchange = scope.get("state", {}).get("exchange")
                if exchange is not None and exchange.output_parts:
                    break
                await asyncio.sleep(0.05)
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await gw.app(scope, receive, send)
        assert next(m for m in sent if m["type"] == "http.response.start")["status"] == 499
        await gw.gateway.wait_settled()
        assert gw.gateway.governance is not None
        await gw.gateway.governance.ledger.flush()
        (row,) = await gw.gateway.store.recent(key_id=made.id)
    assert row["client_gone"] is True and row["status"] == 499
    assert row["usage_source"] == "tokenizer"
    assert row["prompt_tokens"] > 10
    assert 0 < row["completion_tokens"] < 2000
