"""An entry whose upstream connections are all held (idle streams) does not make the next
request hang: it waits `pool_timeout_s` for one, then gets a 503 in its door's shape before
its first byte, and the upstream's health is not blamed for it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.openai_upstream import OpenAIUpstream, chunk
from tests.support.server import Gateway, start_gateway
from tests.support.wire_server import Reply


@pytest.fixture
def gw(tmp_path: Path, clean_upstream: OpenAIUpstream) -> Iterator[Gateway]:
    entry = {
        "name": "up/*",
        "provider": "openai",
        "base_url": clean_upstream.base_url,
        "api_key": "k",
        "max_connections": 2,
        "pool_timeout_s": 0.5,
    }
    gateway = start_gateway(tmp_path, {"models": [entry]})
    yield gateway
    gateway.stop()


async def hold_stream(
    client: httpx.AsyncClient, gw: Gateway, opened: asyncio.Event, release: asyncio.Event
) -> None:
    body = {"model": "up/idle", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    headers = {"Authorization": f"Bearer {gw.api_key}"}
    async with client.stream("POST", gw.v1 + "/chat/completions", json=body, headers=headers) as response:
        assert response.status_code == 200
        opened.set()
        await release.wait()


async def test_a_full_pool_is_a_clear_503_not_a_hang(gw: Gateway, clean_upstream: OpenAIUpstream) -> None:
    idle = Reply(chunks=[chunk(role="assistant", content=""), chunk("still here")], hang_after=True)
    clean_upstream.enqueue(idle, idle)
    release = asyncio.Event()
    opened = [asyncio.Event(), asyncio.Event()]
    auth = {"Authorization": f"Bearer {gw.api_key}"}
    client = httpx.AsyncClient(timeout=30)
    holders = [asyncio.ensure_future(hold_stream(client, gw, event, release)) for event in opened]
    try:
        for event in opened:
            await asyncio.wait_for(event.wait(), 10)
        messages = [{"role": "user", "content": "hi"}]
        cases: list[tuple[str, dict[str, Any], dict[str, str]]] = [
            ("/v1/chat/completions", {"model": "up/fast", "messages": messages}, auth),
            ("/v1/chat/completions", {"model": "up/fast", "messages": messages, "stream": True}, auth),
            ("/v1/messages", {"model": "up/fast", "max_tokens": 5, "messages": messages, "stream": True},
             {"x-api-key": gw.api_key}),
        ]  # fmt: skip
        for path, body, headers in cases:
            response = await asyncio.wait_for(client.post(gw.base_url + path, json=body, headers=headers), 20)
            error = response.json()["error"]
            if path == "/v1/messages":
                assert (response.status_code, error["type"]) == (529, "overloaded_error")
            else:
                assert response.status_code == 503
                assert error["code"] == "upstream_connections_busy"
            assert "connections" in error["message"] and response.headers["retry-after"] == "1"
        assert len(clean_upstream.requests) == 2  # the held streams only
        metrics = (await client.get(gw.base_url + "/metrics")).text
        blamed = [
            line for line in metrics.splitlines()
            if line.startswith("sluicegate_upstream_failures_total{") and float(line.rsplit(" ", 1)[1]) != 0
        ]  # fmt: skip
        assert blamed == []  # the upstream is not blamed for the gateway's own limit
    finally:
        release.set()
        await asyncio.gather(*holders, return_exceptions=True)
    clean_upstream.reset()
    body = {"model": "up/fast", "messages": [{"role": "user", "content": "hi"}]}
    ok = await client.post(gw.v1 + "/chat/completions", json=body, headers=auth)
    await client.aclose()
    assert ok.status_code == 200  # the connections came back when the streams ended


async def test_a_full_pool_moves_on_to_the_next_deployment(tmp_path: Path, clean_upstream: OpenAIUpstream) -> None:
    """A model with two deployments: the first's pool is held by an idle stream, so the next
    request goes to the second (its own pool) instead of the client getting the 503."""
    spare = OpenAIUpstream().start()
    deployment = {"provider": "openai", "api_key": "k", "max_connections": 1, "pool_timeout_s": 0.3}
    entry = {
        "name": "pair",
        "routing": "ordered",
        "deployments": [
            {**deployment, "name": "first", "base_url": clean_upstream.base_url},
            {**deployment, "name": "second", "base_url": spare.base_url},
        ],
    }
    gateway = start_gateway(tmp_path, {"models": [entry]})
    idle = Reply(chunks=[chunk(role="assistant", content=""), chunk("still here")], hang_after=True)
    clean_upstream.enqueue(idle)
    release, opened = asyncio.Event(), asyncio.Event()
    client = httpx.AsyncClient(timeout=30)
    body = {"model": "pair", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    headers = {"Authorization": f"Bearer {gateway.api_key}"}

    async def hold() -> None:
        async with client.stream("POST", gateway.v1 + "/chat/completions", json=body, headers=headers) as answer:
            assert answer.headers["x-sluicegate-deployment"] == "first"
            opened.set()
            await release.wait()

    holder = asyncio.ensure_future(hold())
    try:
        await asyncio.wait_for(opened.wait(), 10)
        answer = await client.post(gateway.v1 + "/chat/completions", json={**body, "stream": False}, headers=headers)
        assert answer.status_code == 200, answer.text
        assert answer.headers["x-sluicegate-deployment"] == "second"
        assert len(spare.requests) == 1
    finally:
        release.set()
        await asyncio.gather(holder, return_exceptions=True)
        await client.aclose()
        gateway.stop()
        spare.stop()
