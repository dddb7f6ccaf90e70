"""Any OpenAI-compatible upstream: OpenAI, vLLM, llama.cpp server, Ollama, Groq...

A client that spoke OpenAI has its body forwarded as sent (unknown fields included) with only
the model name swapped, so features the gateway does not know about still reach servers that
do; the answer's fields the gateway does not know come back the same way.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import aiohttp

from sluicegate.core.completion import Completion, completion_events
from sluicegate.core.embeddings import EmbeddingRequest, Embeddings, input_tokens_estimate
from sluicegate.core.events import Batch, LastBatch, Started
from sluicegate.core.request import ChatRequest, WireFormat
from sluicegate.errors import GatewayError, UpstreamError
from sluicegate.http.sse import SSEEvent
from sluicegate.providers.http import UpstreamProvider
from sluicegate.providers.openai.chunks import ChunkParser
from sluicegate.providers.openai.config import OpenAIConfig
from sluicegate.providers.openai.errors import upstream_error
from sluicegate.providers.openai.legacy import LegacyChunkParser, parse_text_completion
from sluicegate.providers.openai.relay import ChatRelay
from sluicegate.providers.openai.request import openai_body
from sluicegate.providers.openai.response import parse_completion


class OpenAIProvider(UpstreamProvider[OpenAIConfig]):
    kind = "openai"
    native_formats: frozenset[WireFormat] = frozenset({"openai_chat", "openai_completions"})

    def __init__(self, config: OpenAIConfig) -> None:
        super().__init__(
            config,
            lambda status, body, headers: upstream_error(status, body, headers, config.name),
            "openai-compatible",
            ("Authorization", "Bearer "),
            {"Content-Type": "application/json"},
        )
        self.continues_final = config.continue_final_message
        if config.passthrough:
            self.relay_formats = frozenset({"openai_chat"})
        self.url = f"{config.base_url}/chat/completions"
        self.legacy_url = f"{config.base_url}/completions"

    async def _post(self, request: ChatRequest, stream: bool) -> aiohttp.ClientResponse:
        if request.prompts is not None:  # legacy completions: the client's body, as sent
            body = self.encode(lambda: legacy_body(request, self._model(request), stream))
            return await self.transport.post(self.legacy_url, body, self._headers, stream=stream)
        body = self.encode(lambda: openai_body(request, self._model(request), stream))
        return await self.transport.post(self.url, body, self._headers, stream=stream)

    async def stream(self, request: ChatRequest) -> AsyncGenerator[Batch, None]:
        response = await self._post(request, stream=True)
        started: Batch = [Started(upstream_model=self._model(request))]
        if response.content_type == "application/json":
            # Some servers ignore `stream: true` and answer whole; stream that answer.
            yield started
            yield completion_events(self._whole(request, await self.transport.read_json(response)))
            return
        if request.byte_relay is not None and request.prompts is None:
            async for batch in self._relayed(response, started):
                yield batch
            return
        parser: ChunkParser | LegacyChunkParser = (
            LegacyChunkParser(self.name) if request.prompts is not None else ChunkParser(self.name)
        )
        saw_done = False
        events = self.transport.events(response, arrived_first=True)
        try:
            last: Batch = []
            async for sse_events in events:
                batch, saw_done, error = _parse(sse_events, parser, self.name)
                if started:  # the first list, given at once: the start goes with what arrived
                    if not sse_events:  # nothing came with the status: its metadata is to come
                        started[0].metadata_pending = True  # type: ignore[union-attr]
                    batch, started = started + batch, []
                if saw_done:
                    last = batch  # goes with what the end owes, as the last batch
                    break
                if batch:
                    yield batch
                if error is not None:
                    raise error
            last = started + last + parser.close(saw_done)
            if last:
                yield LastBatch(last)
        finally:
            await events.aclose()

    async def _relayed(self, response: aiohttp.ClientResponse, started: Batch) -> AsyncGenerator[Batch, None]:
        """`stream` with the byte relay (providers/openai/relay.py): the text chunks' pieces
        as the upstream wrote them, the other chunks translated; batched as `stream` batches."""
        relay = ChatRelay(self.name)
        started[0].transcript = relay.transcript  # type: ignore[union-attr]
        reads = self.transport.reads(response, arrived_first=True)
        first = True
        try:
            last: Batch = []
            async for data in reads:
                batch, error = relay.feed(data)
                if first:  # the first read, given at once: the start goes with what arrived
                    first = False
                    if b"\n\n" not in data and b"\r" not in data:  # no whole event came with the status:
                        started[0].metadata_pending = True  # type: ignore[union-attr]  # its metadata is to come
                    batch, started = started + batch, []
                if relay.done:
                    last = batch  # goes with what the end owes, as the last batch
                    break
                if batch:
                    yield batch
                if error is not None:
                    raise error
                del data, batch  # passed on: not kept while the stream waits for more
            last = started + last + relay.close()
            if last:
                yield LastBatch(last)
        finally:
            await reads.aclose()

    async def complete(self, request: ChatRequest) -> Completion:
        response = await self._post(request, stream=False)
        completion = self._whole(request, await self.transport.read_json(response))
        completion.origin = Started(upstream_model=self._model(request))
        return completion

    def _whole(self, request: ChatRequest, body: object) -> Completion:
        if request.prompts is not None:
            return parse_text_completion(body, self.name)
        return parse_completion(body, self.name)

    async def count_tokens(self, request: ChatRequest) -> int | None:
        return None  # OpenAI-compatible servers have no standard endpoint for it

    async def embed(self, request: EmbeddingRequest) -> Embeddings:
        """The client's body as sent, with the upstream's model name; its answer as it came."""
        model = self._model(request)
        body = self.encode(lambda: {**request.raw, "model": model})
        response = await self.transport.post(f"{self.config.base_url}/embeddings", body, self._headers, stream=False)
        answer = await self.transport.read_json(response)
        data = answer.get("data") if isinstance(answer, dict) else None
        if not isinstance(data, list):
            raise UpstreamError(f"The upstream of `{self.name}` answered /embeddings without `data`.")
        usage = answer.get("usage")
        tokens = usage.get("prompt_tokens") if isinstance(usage, dict) else None
        return Embeddings(
            vectors=[],
            prompt_tokens=tokens if isinstance(tokens, int) else input_tokens_estimate(request),
            estimated=not isinstance(tokens, int),
            body=answer,
            origin=Started(upstream_model=model),
        )


def legacy_body(request: ChatRequest, upstream_model: str, stream: bool) -> dict[str, Any]:
    """The client's legacy completions body with the upstream's model; usage asked for in streams."""
    client = request.native_body.body if request.native_body is not None else request.raw
    body: dict[str, Any] = {**client, "model": upstream_model, "stream": stream}
    if stream:
        body["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
    else:
        body.pop("stream_options", None)
    return body


def _parse(events: list[SSEEvent], parser: ChunkParser | LegacyChunkParser, name: str) -> tuple[Batch, bool, GatewayError | None]:
    """The canonical events of one network read, whether it held `[DONE]`, and the error
    that interrupted it (returned, so the events before it still reach the client)."""
    batch: Batch = []
    for sse in events:
        if sse.data == "[DONE]":
            return batch, True, None
        try:
            batch += parser.parse_text(sse.data)
        except GatewayError as exc:
            return batch, False, exc
    return batch, False, None

