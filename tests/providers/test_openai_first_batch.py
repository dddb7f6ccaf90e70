"""The provider's first batch: the start of the answer goes out with whatever arrived with the
upstream's status (one write to the client where there were two), and never waits for more.

The upstream here is a raw socket server, so the test decides exactly which bytes arrive with
the status line: aiohttp's own server would send the headers in a write of their own."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from sluicegate.core.events import Batch, Finish, Started, TextDelta, Usage
from sluicegate.core.request import ChatRequest
from sluicegate.providers.openai.config import OpenAIConfig
from sluicegate.providers.openai.provider import OpenAIProvider
from tests.support.openai_upstream import chunk, sse

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
USAGE = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [],
         "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}  # fmt: skip


def http_chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


ANSWER = b"".join(
    [chunk(role="assistant", content=""), chunk("Xin"), chunk(" chào"), chunk(finish="stop"), sse(USAGE)]
) + sse(b"[DONE]")


class RawUpstream:
    """Answers one request with `with_status` in the same write as its status line; the rest
    of the body once `go` is set."""

    def __init__(self, with_status: bytes, rest: bytes) -> None:
        self.with_status = with_status
        self.rest = rest
        self.go = asyncio.Event()
        self.port = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> RawUpstream:
        self._server = await asyncio.start_server(self._answer, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
        )
        await reader.readexactly(length)
        writer.write(HEAD + (http_chunk(self.with_status) if self.with_status else b""))
        await self.go.wait()
        writer.write((http_chunk(self.rest) if self.rest else b"") + b"0\r\n\r\n")
        await writer.drain()
        writer.close()


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
    everything = [event for batch in [first, *rest] for event in batch]
    assert any(isinstance(event, Usage) and event.completion_tokens == 2 for event in everything)
    assert all(type(event) is not Started for batch in rest for event in batch)


async def test_the_first_batch_does_not_wait_for_the_first_token(provider_for: list[OpenAIProvider]) -> None:
    async with RawUpstream(b"", ANSWER) as upstream:
        provider = await open_provider(upstream, provider_for)
        stream = provider.stream(request())
        # the upstream sends nothing more until `go`: waiting for content here would hang
        first = await asyncio.wait_for(anext(stream), timeout=30)
        assert first == [Started(upstream_model="raw")]
        upstream.go.set()
        rest = [batch async for batch in stream]
    assert "".join(texts(batch) for batch in rest) == "Xin chào"


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
