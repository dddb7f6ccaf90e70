"""Every request billed at what it really costs (issue 20, findings 1-5), in process: the gateway
behind httpx's ASGI transport (or driven as ASGI directly, to hang up), real local upstreams.

1. the admission estimate counts the whole prompt (tools, schemas, system) at every door;
2. without max_tokens a budget reserves the model entry's `max_output_tokens`;
3. a fallback is billed at its own price, and only tried when the key may use it;
4. a whole answer whose client left is still read and billed;
5. a request no upstream answered costs nothing, streamed or whole.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest

from sluicegate.settings import Settings
from sluicegate.store.records import usd_to_nanos
from tests.support.inprocess import InProcess, in_process, settings_for
from tests.support.openai_upstream import OpenAIUpstream, Reply
from tests.support.server import free_port

PER_MILLION = 1_000_000.0  # a price of this many USD per million tokens is $1 a token


def upstream_entry(name: str, base_url: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "provider": "openai", "base_url": base_url, "api_key": "x", **fields}


@asynccontextmanager
async def gateway(tmp_path: Path, models: list[dict[str, Any]]) -> AsyncIterator[InProcess]:
    async with in_process(settings_for(tmp_path, models)) as gw:
        yield gw


async def key(gw: InProcess, **rules: Any) -> tuple[str, dict[str, str]]:
    """A key's id and the headers that authenticate with it (both doors' headers)."""
    record, secret = await gw.gateway.keys.create(f"money-{secrets.token_hex(4)}", **rules)
    return record.id, {"Authorization": f"Bearer {secret}", "x-api-key": secret}


async def rows(gw: InProcess, key_id: str) -> list[dict[str, Any]]:
    gateway = gw.gateway
    await gateway.wait_settled()
    assert gateway.governance is not None
    await gateway.governance.ledger.flush()
    found = await gateway.store.recent(key_id=key_id)
    for row in found:
        row["cost_nanos"] = usd_to_nanos(row["cost_usd"])
    return found


def tools(count: int, description_chars: int) -> list[dict[str, Any]]:
    """Function tools with long descriptions and a small schema, as in the issue's reproduction."""
    return [
        {
            "type": "function",
            "function": {
                "name": f"tool_{i}",
                "description": "Looks things up in the catalogue. " * (description_chars // 34),
                "parameters": {"type": "object", "properties": {"query": {"type": "string"}}},
            },
        }
        for i in range(count)
    ]


# --- 1. the estimate counts the whole prompt, at every door ----------------------------------

HI = [{"role": "user", "content": "hi"}]
BIG_TOOLS = tools(200, 4096)  # about 200,000 tokens of definitions


def door_bodies() -> dict[str, tuple[str, dict[str, Any]]]:
    """The same huge prompt, in each door's own format: tools, a system prompt, a schema."""
    schema = {"type": "object", "properties": {f"field_{i}": {"type": "string"} for i in range(20)}}
    return {
        "chat tools": ("/v1/chat/completions", {"model": "m", "messages": HI, "tools": BIG_TOOLS, "max_tokens": 5}),
        "chat functions": (
            "/v1/chat/completions",
            {"model": "m", "messages": HI, "functions": [t["function"] for t in BIG_TOOLS], "max_tokens": 5},
        ),
        "chat schema": (
            "/v1/chat/completions",
            {
                "model": "m",
                "messages": HI,
                "max_tokens": 5,
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "x", "description": "d" * 800_000, "schema": schema},
                },
            },
        ),
        "messages tools": (
            "/v1/messages",
            {
                "model": "m",
                "max_tokens": 5,
                "messages": HI,
                "tools": [
                    {"name": t["function"]["name"], "description": t["function"]["description"],
                     "input_schema": t["function"]["parameters"]}
                    for t in BIG_TOOLS
                ],
            },
        ),
        "messages system": (
            "/v1/messages",
            {"model": "m", "max_tokens": 5, "messages": HI, "system": [{"type": "text", "text": "s" * 800_000}]},
        ),
        "responses tools": (
            "/v1/responses",
            {
                "model": "m",
                "input": "hi",
                "max_output_tokens": 5,
                "tools": [{"type": "function", **t["function"]} for t in BIG_TOOLS],
            },
        ),
        "responses schema": (
            "/v1/responses",
            {
                "model": "m",
                "input": "hi",
                "max_output_tokens": 5,
                "text": {"format": {"type": "json_schema", "name": "x", "schema": schema, "description": "d" * 800_000}},
            },
        ),
    }


@pytest.mark.parametrize("case", list(door_bodies()))
async def test_a_prompt_of_tools_and_schemas_is_reserved_whole_at_every_door(tmp_path: Path, case: str) -> None:
    # $1 per million prompt tokens: the prompt is worth about $0.2; the key has $0.05.
    unreachable = f"http://127.0.0.1:{free_port()}/v1"
    async with gateway(tmp_path, [upstream_entry("m", unreachable, price={"input": 1, "output": 1})]) as gw:
        key_id, headers = await key(gw, budget_nanos=usd_to_nanos(0.05))
        path, body = door_bodies()[case]
        response = await gw.client.post(path, json=body, headers=headers)
        assert response.status_code == 402, response.text  # before: admitted (and sent upstream)
        error = response.json()["error"]
        if path == "/v1/messages":  # Anthropic's shape: the figures are in the message
            assert error["type"] == "billing_error" and "may cost up to $0.2" in error["message"]
        else:
            assert error["estimated_cost_usd"] >= 0.15
        (row,) = await rows(gw, key_id)
        assert row["status"] == 402 and row["cost_nanos"] == 0


async def test_the_issue_scenario_spends_within_the_budget(tmp_path: Path) -> None:
    """$0.30 budget, 30 concurrent requests of 200 tool definitions, upstream billing the prompt:
    what is spent stays within the budget (before: 7 admitted, thousands of times over)."""
    upstream = OpenAIUpstream().start()
    try:
        prompt_tokens = 206_000
        answer = {
            "id": "c", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": 1, "total_tokens": prompt_tokens + 1},
        }  # fmt: skip
        upstream.enqueue(*[Reply(body=orjson.dumps(answer), wait_s=0.2) for _ in range(30)])
        models = [upstream_entry("m", upstream.base_url, price={"input": 1, "output": 1})]
        async with gateway(tmp_path, models) as gw:
            key_id, headers = await key(gw, budget_nanos=usd_to_nanos(0.30))
            body = {"model": "m", "messages": HI, "tools": BIG_TOOLS, "max_tokens": 5}
            answers = await asyncio.gather(
                *[gw.client.post("/v1/chat/completions", json=body, headers=headers) for _ in range(30)]
            )
            statuses = sorted(a.status_code for a in answers)
            assert statuses.count(200) == 1 and statuses.count(402) == 29, statuses
            assert len(await rows(gw, key_id)) == 30
            found = await gw.gateway.store.get_key(key_id)
            assert found is not None and found.spent_nanos <= usd_to_nanos(0.30)
            assert found.reserved_nanos == 0
    finally:
        upstream.stop()


# --- 2. no max_tokens: the model entry's output limit is reserved ---------------------------


async def test_without_max_tokens_a_budget_reserves_the_models_output_limit(tmp_path: Path) -> None:
    unreachable = f"http://127.0.0.1:{free_port()}/v1"
    # $1 a completion token; 3,000 tokens may be written; the key has $2,000 (1,024 would fit)
    entry = upstream_entry("m", unreachable, price={"input": 0, "output": PER_MILLION}, max_output_tokens=3000)
    async with gateway(tmp_path, [entry]) as gw:
        key_id, headers = await key(gw, budget_nanos=usd_to_nanos(2000))
        response = await gw.client.post("/v1/chat/completions", json={"model": "m", "messages": HI}, headers=headers)
        assert response.status_code == 402, response.text
        assert response.json()["error"]["estimated_cost_usd"] == pytest.approx(3000, rel=0.01)
        # with max_tokens, that is what is reserved
        response = await gw.client.post(
            "/v1/chat/completions", json={"model": "m", "messages": HI, "max_tokens": 100}, headers=headers
        )
        assert response.status_code == 502  # admitted; the upstream is not there
        assert len(await rows(gw, key_id)) == 2


async def test_the_default_output_limit_is_documented_and_reserved(tmp_path: Path) -> None:
    unreachable = f"http://127.0.0.1:{free_port()}/v1"
    entry = upstream_entry("m", unreachable, price={"input": 0, "output": PER_MILLION})
    async with gateway(tmp_path, [entry]) as gw:
        _, headers = await key(gw, budget_nanos=usd_to_nanos(30_000))
        response = await gw.client.post("/v1/chat/completions", json={"model": "m", "messages": HI}, headers=headers)
        assert response.status_code == 402
        assert response.json()["error"]["estimated_cost_usd"] == pytest.approx(32_768, rel=0.01)


def test_reserve_completion_tokens_is_gone_with_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_output_tokens"):
        Settings.model_validate({"data_dir": str(tmp_path), "governance": {"reserve_completion_tokens": 1024}})


# --- 3. fallbacks: the price of what answered, the key's model list ------------------------


@asynccontextmanager
async def cheap_and_pricey(tmp_path: Path, **pricey: Any) -> AsyncIterator[tuple[InProcess, OpenAIUpstream]]:
    """`cheap` ($1/M, its upstream refuses connections) falls back to `pricey` ($100/M)."""
    upstream = OpenAIUpstream().start()
    unreachable = f"http://127.0.0.1:{free_port()}/v1"
    models = [
        upstream_entry("cheap", unreachable, price={"input": 1, "output": 1}, fallbacks=["pricey"]),
        {"name": "pricey", "price": {"input": 100, "output": 100}, **pricey}
        if "deployments" in pricey
        else upstream_entry("pricey", upstream.base_url, price={"input": 100, "output": 100}),
    ]
    if "deployments" in pricey:
        for deployment in pricey["deployments"]:
            deployment["base_url"] = upstream.base_url
    try:
        async with gateway(tmp_path, models) as gw:
            yield gw, upstream
    finally:
        upstream.stop()


@pytest.mark.parametrize("stream", [False, True])
async def test_a_fallback_is_billed_at_its_own_price_and_named_in_the_row(tmp_path: Path, stream: bool) -> None:
    async with cheap_and_pricey(tmp_path) as (gw, _):
        key_id, headers = await key(gw, budget_nanos=usd_to_nanos(10))
        body = {"model": "cheap", "messages": [{"role": "user", "content": "one two three"}], "max_tokens": 10}
        if stream:
            body |= {"stream": True, "stream_options": {"include_usage": True}}
        response = await gw.client.post("/v1/chat/completions", json=body, headers=headers)
        assert response.status_code == 200, response.text
        (row,) = await rows(gw, key_id)
        assert (row["model"], row["served_by"], row["deployment"]) == ("cheap", "pricey", "pricey")
        assert (row["prompt_tokens"], row["completion_tokens"]) == (5, 3)  # the echo upstream's usage
        assert row["cost_nanos"] == 8 * 100 * 1000  # 8 tokens at $100 per million (before: at $1)


async def test_a_deployments_own_price_is_what_its_answers_cost(tmp_path: Path) -> None:
    deployments = [{"name": "pricey-east", "provider": "openai", "api_key": "x", "price": {"input": 7, "output": 7}}]
    async with cheap_and_pricey(tmp_path, deployments=deployments) as (gw, _):
        key_id, headers = await key(gw, budget_nanos=usd_to_nanos(10))
        body = {"model": "cheap", "messages": [{"role": "user", "content": "one two three"}], "max_tokens": 10}
        response = await gw.client.post("/v1/chat/completions", json=body, headers=headers)
        assert response.status_code == 200, response.text
        (row,) = await rows(gw, key_id)
        assert (row["served_by"], row["deployment"]) == ("pricey", "pricey-east")
        assert row["cost_nanos"] == 8 * 7 * 1000


async def test_a_fallback_the_key_may_not_use_is_skipped_with_the_original_failure(tmp_path: Path) -> None:
    async with cheap_and_pricey(tmp_path) as (gw, upstream):
        key_id, headers = await key(gw, budget_nanos=usd_to_nanos(10), models=("cheap",))
        body = {"model": "cheap", "messages": HI, "max_tokens": 10}
        for stream in (False, True):
            response = await gw.client.post("/v1/chat/completions", json=body | {"stream": stream}, headers=headers)
            if response.status_code == 200:  # a stream committed by a keep-alive carries the error
                assert "error" in response.text
            else:
                assert response.status_code == 502, response.text
        assert upstream.requests == []  # `pricey` was never asked
        for row in await rows(gw, key_id):
            assert row["served_by"] == "cheap" and row["cost_nanos"] == 0


async def test_the_reservation_covers_the_dearest_fallback_the_key_may_use(tmp_path: Path) -> None:
    async with cheap_and_pricey(tmp_path) as (gw, _):
        # 10 completion tokens: $0.00001 at cheap's price, $0.001 at pricey's
        _, headers = await key(gw, budget_nanos=usd_to_nanos(0.0005))
        body = {"model": "cheap", "messages": HI, "max_tokens": 10}
        response = await gw.client.post("/v1/chat/completions", json=body, headers=headers)
        assert response.status_code == 402
        _, only_cheap = await key(gw, budget_nanos=usd_to_nanos(0.0005), models=("cheap",))
        response = await gw.client.post("/v1/chat/completions", json=body, headers=only_cheap)
        assert response.status_code == 502  # admitted at cheap's price; its upstream is down


# --- 4. a whole answer whose client left is billed -----------------------------------------


async def hang_up(gw: InProcess, path: str, body: dict[str, Any], headers: dict[str, str], after_s: float) -> int:
    """Send a request to the app as ASGI and hang up after `after_s` s; the status it answered."""
    payload = orjson.dumps(body)
    incoming = [{"type": "http.request", "body": payload, "more_body": False}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if incoming:
            return incoming.pop(0)
        await asyncio.sleep(after_s)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"",
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
        + [(name.lower().encode(), value.encode()) for name, value in headers.items()],
        "client": ("127.0.0.1", 50000), "server": ("gateway", 80),
    }  # fmt: skip
    await gw.app(scope, receive, send)
    start = next(message for message in sent if message["type"] == "http.response.start")
    return int(start["status"])


async def test_a_whole_answer_whose_client_left_is_billed_what_the_upstream_bills(tmp_path: Path) -> None:
    upstream = OpenAIUpstream().start()
    try:
        answer = {
            "id": "c", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "x"}, "finish_reason": "length"}],
            "usage": {"prompt_tokens": 40, "completion_tokens": 500, "total_tokens": 540},
        }  # fmt: skip
        upstream.enqueue(Reply(body=orjson.dumps(answer), wait_s=1.0))
        models = [upstream_entry("m", upstream.base_url, price={"input": 0, "output": PER_MILLION})]
        async with gateway(tmp_path, models) as gw:
            key_id, headers = await key(gw, budget_nanos=usd_to_nanos(10_000))
            body = {"model": "m", "messages": HI, "max_tokens": 500}
            status = await hang_up(gw, "/v1/chat/completions", body, headers, after_s=0.2)
            assert status == 499
            await gw.gateway.finish_background()  # the answer is read to its end
            (row,) = await rows(gw, key_id)
            assert row["client_gone"] and row["status"] == 499
            assert (row["prompt_tokens"], row["completion_tokens"]) == (40, 500)  # before: 0 and 0
            assert row["usage_source"] == "upstream"
            assert row["cost_nanos"] == usd_to_nanos(500)
            found = await gw.gateway.store.get_key(key_id)
            assert found is not None and found.spent_nanos == usd_to_nanos(500) and found.reserved_nanos == 0
    finally:
        upstream.stop()


async def test_an_answer_still_read_at_shutdown_is_ended_at_its_deadline_and_settled(tmp_path: Path) -> None:
    upstream = OpenAIUpstream().start()
    try:
        upstream.enqueue(Reply(body=b"{}", wait_s=30))  # an answer that would take 30 s
        models = [upstream_entry("m", upstream.base_url, price={"input": 1, "output": 1})]
        settings = settings_for(tmp_path, models, shutdown_timeout_s=0.5)
        async with in_process(settings) as gw:
            key_id, headers = await key(gw, budget_nanos=usd_to_nanos(10))
            body = {"model": "m", "messages": HI, "max_tokens": 5}
            assert await hang_up(gw, "/v1/chat/completions", body, headers, after_s=0.2) == 499
            await gw.gateway.finish_background()  # the shutdown timeout, then the read is ended
            (row,) = await rows(gw, key_id)
            assert row["client_gone"] and row["status"] == 499 and row["cost_nanos"] == 0
    finally:
        upstream.stop()


# --- 5. nothing answered, nothing billed: streamed and whole alike -------------------------


@pytest.mark.parametrize("stream", [False, True])
async def test_a_request_no_upstream_answered_costs_nothing(tmp_path: Path, stream: bool) -> None:
    unreachable = f"http://127.0.0.1:{free_port()}/v1"
    models = [upstream_entry("m", unreachable, price={"input": PER_MILLION, "output": PER_MILLION})]
    async with gateway(tmp_path, models) as gw:
        key_id, headers = await key(gw, budget_nanos=usd_to_nanos(10**6))
        long_prompt = [{"role": "user", "content": "word " * 400}]
        body = {"model": "m", "messages": long_prompt, "max_tokens": 5, "stream": stream}
        response = await gw.client.post("/v1/chat/completions", json=body, headers=headers)
        assert response.status_code == 502 or "error" in response.text
        (row,) = await rows(gw, key_id)
        assert row["status"] == 502 and row["usage_source"] == "none"
        assert (row["prompt_tokens"], row["cost_nanos"]) == (0, 0)  # before: the prompt's estimate, whole
        found = await gw.gateway.store.get_key(key_id)
        assert found is not None and found.spent_nanos == 0
