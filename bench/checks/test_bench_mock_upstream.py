"""The benchmark's mock upstream must be an honest OpenAI server: checked with the official SDK
and, when the OpenAPI spec is available, against ``CreateChatCompletionStreamResponse``."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from openai import AsyncOpenAI

from bench.mock_upstream import MockParams, bound_port, params_for, start_mock

OPENAPI = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "openai-openapi.yaml"


@pytest.fixture
async def mock_url() -> AsyncIterator[str]:
    server = await start_mock(port=0, default=MockParams(chunks=4, total_ms=40))
    yield f"http://127.0.0.1:{bound_port(server)}/v1"
    server.close()


def test_params_resolution() -> None:
    default = MockParams(chunks=3, total_ms=10)
    assert params_for("mock-model", {}, default) == default
    assert params_for("mock-c20-t1000", {}, default) == MockParams(20, 1000)
    assert params_for("openai/mock-c5-t0", {}, default) == MockParams(5, 0)
    assert params_for("mock-c20-t1000", {"mock_chunks": 2, "mock_total_ms": 7}, default) == MockParams(2, 7)


async def test_streaming_with_the_openai_sdk(mock_url: str) -> None:
    client = AsyncOpenAI(base_url=mock_url, api_key="dummy", max_retries=0)
    started = time.perf_counter()
    stream = await client.chat.completions.create(
        model="mock-model",
        messages=[{"role": "user", "content": "hello there"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    elapsed = time.perf_counter() - started
    await client.close()

    assert elapsed >= 0.04  # 4 chunks spread over 40 ms
    assert len({c.id for c in chunks}) == 1
    assert all(c.object == "chat.completion.chunk" and c.model == "mock-model" for c in chunks)
    first, *content, finish, usage = chunks
    assert first.choices[0].delta.role == "assistant"
    assert first.choices[0].finish_reason is None
    assert len(content) == 4
    assert all(c.choices[0].delta.content and c.choices[0].finish_reason is None for c in content)
    assert finish.choices[0].finish_reason == "stop"
    assert finish.choices[0].delta.content is None and finish.choices[0].delta.role is None
    assert usage.choices == []
    assert usage.usage is not None
    assert usage.usage.completion_tokens == 4
    assert usage.usage.total_tokens == usage.usage.prompt_tokens + 4
    assert all(c.usage is None for c in chunks[:-1])


async def test_streaming_without_usage_and_per_request_overrides(mock_url: str) -> None:
    client = AsyncOpenAI(base_url=mock_url, api_key="dummy", max_retries=0)
    stream = await client.chat.completions.create(
        model="mock-c2-t0", messages=[{"role": "user", "content": "x"}], stream=True
    )
    chunks = [chunk async for chunk in stream]
    assert len(chunks) == 1 + 2 + 1 and chunks[-1].choices[0].finish_reason == "stop"
    stream = await client.chat.completions.create(
        model="mock-c2-t0",
        messages=[{"role": "user", "content": "x"}],
        stream=True,
        extra_body={"mock_chunks": 6},
    )
    chunks = [chunk async for chunk in stream]
    await client.close()
    assert len(chunks) == 1 + 6 + 1


async def test_non_streaming_with_the_openai_sdk(mock_url: str) -> None:
    client = AsyncOpenAI(base_url=mock_url, api_key="dummy", max_retries=0)
    started = time.perf_counter()
    completion = await client.chat.completions.create(
        model="mock-c3-t60", messages=[{"role": "user", "content": "one two three"}]
    )
    elapsed = time.perf_counter() - started
    await client.close()
    assert elapsed >= 0.06
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.completion_tokens == 3
    assert completion.usage.prompt_tokens == 3


async def test_errors_are_openai_shaped(mock_url: str) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{mock_url}/chat/completions", data=b"{not json") as resp:
            assert resp.status == 400
            assert "message" in (await resp.json())["error"]
        async with session.get(f"{mock_url}/models") as resp:
            assert (await resp.json())["data"][0]["id"] == "mock-model"


def _nullable_to_jsonschema(node: Any) -> Any:
    """OpenAPI's ``nullable: true`` is not JSON Schema; rewrite it so jsonschema enforces the rest."""
    if isinstance(node, list):
        return [_nullable_to_jsonschema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _nullable_to_jsonschema(v) for k, v in node.items() if k != "nullable"}
    if node.get("nullable") is True:
        if isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
            if "enum" in out:
                out["enum"] = [*out["enum"], None]
        else:
            return {"anyOf": [out, {"type": "null"}]}
    return out


async def test_stream_chunks_match_the_openapi_schema(mock_url: str) -> None:
    if not OPENAPI.exists():
        pytest.skip(f"{OPENAPI} not available")
    import jsonschema
    import yaml
    from referencing import Registry, Resource

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    spec = _nullable_to_jsonschema(yaml.load(OPENAPI.read_text(), Loader=loader))
    registry = Registry().with_resource(
        "urn:openai", Resource.from_contents(spec, default_specification=_draft())
    )
    validator = jsonschema.Draft202012Validator(
        {"$ref": "urn:openai#/components/schemas/CreateChatCompletionStreamResponse"}, registry=registry
    )
    body = {
        "model": "mock-c3-t0",
        "stream": True,
        "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": "hi"}],
    }
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{mock_url}/chat/completions", json=body) as resp,
    ):
        assert resp.status == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        raw = await resp.read()
    events = [e for e in raw.split(b"\n\n") if e]
    assert all(e.startswith(b"data: ") for e in events)
    assert events[-1] == b"data: [DONE]"
    chunks = [orjson.loads(e[len(b"data: ") :]) for e in events[:-1]]
    assert len(chunks) == 1 + 3 + 1 + 1
    for chunk in chunks:
        validator.validate(chunk)
    bogus = {**chunks[1], "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "bogus"}]}
    assert not validator.is_valid(bogus)  # the converted schema still enforces the enums
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 3
    assert chunks[-2]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}


def _draft() -> Any:
    from referencing.jsonschema import DRAFT202012

    return DRAFT202012
