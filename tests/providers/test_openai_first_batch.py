"""The provider's batches: the start of the answer goes out with whatever arrived with the
upstream's status (one write to the client where there were two), and never waits for more;
the last batch says it is the last, so a door can send it with the stream's closing bytes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from sluicegate.core.events import Batch, Finish, LastBatch, Started, TextDelta, Usage
from sluicegate.core.request import ChatRequest
from sluicegate.providers.openai.config import OpenAIConfig
from sluicegate.providers.openai.provider import OpenAIProvider
from tests.support.raw_upstream import ANSWER, RawUpstream


@pytest.fixture
async def provider_for() -> AsyncIterator[list[OpenAIProvider]]:
    started: list[OpenAIProvider] = []
    yield started
    for provider in started:
        await provider.close()


async def open_provider(upstream: RawUpstream, started: list[OpenAIProvider]) -> OpenAIProvider:
    config = OpenAIConfig(
        name="raw", provider="openai", base_url=f"http://127.0.0.1:{upstream.port}/v1", api_key="k"
    )
    provider = OpenAIProvider(config)
    await provider.start()
    started.append(provider)
    return provider


def request() -> ChatRequest:
    return ChatRequest(model="raw", messages=[{"role": "user", "content": "hi"}], raw={}, stream=True)


def texts(batch: Batch) -> str:
    return "".join(event.text for event in batch if isinstance(event, TextDelta))


async def test_an_answer_that_arrived_with_the_status_is_in_the_first_batch(
    provider_for: list[OpenAIProvider],
) -> None:
    async with RawUpstream(ANSWER, b"") as upstream:
        upstream.go.set()
        provider = await open_provider(upstream, provider_for)
        stream = provider.stream(request())
        first = await anext(stream)
        rest = [batch async for batch in stream]
    assert type(first[0]) is Started
    assert texts(first) == "Xin chào"
    assert any(isinstance(event, Finish) and event.reason == "stop" for event in first)
    assert any(isinstance(event, Usage) and event.completion_tokens == 2 for event in first)
    assert type(first) is LastBatch  # the whole answer: a door may send it with its closing bytes
    assert rest == []


async def test_the_first_batch_does_not_wait_for_the_first_token(provider_for: list[OpenAIProvider]) -> None:
    async with RawUpstream(b"", ANSWER) as upstream:
        provider = await open_provider(upstream, provider_for)
        stream = provider.stream(request())
        # the upstream sends nothing more until `go`: waiting for content here would hang
        first = await asyncio.wait_for(anext(stream), timeout=30)
        # the door learns that the metadata of the answer (its first chunk) is still to come
        assert first == [Started(upstream_model="raw", metadata_pending=True)]
        upstream.go.set()
        rest = [batch async for batch in stream]
    assert "".join(texts(batch) for batch in rest) == "Xin chào"
    assert [type(batch) for batch in rest] == [list] * (len(rest) - 1) + [LastBatch]
    assert any(isinstance(event, Usage) for event in rest[-1])


async def test_an_answer_split_around_the_status_keeps_its_order(provider_for: list[OpenAIProvider]) -> None:
    half = ANSWER.index(b"data:", 10)  # the role chunk with the status, the rest after
    async with RawUpstream(ANSWER[:half], ANSWER[half:]) as upstream:
        provider = await open_provider(upstream, provider_for)
        stream = provider.stream(request())
        first = await asyncio.wait_for(anext(stream), timeout=30)
        upstream.go.set()
        rest = [batch async for batch in stream]
    assert type(first[0]) is Started
    assert texts(first) == ""
    assert "".join(texts(batch) for batch in rest) == "Xin chào"
