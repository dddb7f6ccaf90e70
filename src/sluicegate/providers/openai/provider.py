"""Any OpenAI-compatible upstream: OpenAI, vLLM, llama.cpp server, Ollama, Groq...

A client that spoke OpenAI has its body forwarded as sent (unknown fields included) with only
the model name swapped, so features the gateway does not know about still reach servers that
do; the answer's fields the gateway does not know come back the same way.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

import aiohttp

from sluicegate.core.completion import Completion, completion_events
from sluicegate.core.events import Batch, LastBatch, Started
from sluicegate.core.request import ChatRequest
from sluicegate.errors import GatewayError
from sluicegate.http.sse import SSEEvent
from sluicegate.providers.http import UpstreamProvider
from sluicegate.providers.openai.chunks import ChunkParser
from sluicegate.providers.openai.config import OpenAIConfig
from sluicegate.providers.openai.errors import upstream_error
from sluicegate.providers.openai.request import openai_body
from sluicegate.providers.openai.response import parse_completion


class OpenAIProvider(UpstreamProvider[OpenAIConfig]):
    kind = "openai"

    def __init__(self, config: OpenAIConfig) -> None:
        super().__init__(
            config,
            lambda status, body, headers: upstream_error(status, body, headers, config.name),
            "openai-compatible",
            ("Authorization", "Bearer "),
            {"Content-Type": "application/json"},
        )
        self.url = f"{config.base_url}/chat/completions"

    async def _post(self, request: ChatRequest, stream: bool) -> aiohttp.ClientResponse:
        body = self.encode(lambda: openai_body(request, self._model(request), stream))
        return await self.transport.post(self.url, body, self._headers, stream=stream)

    async def stream(self, request: ChatRequest) -> AsyncGenerator[Batch, None]:
        response = await self._post(request, stream=True)
        started: Batch = [Started(upstream_model=self._model(request))]
        if response.content_type == "application/json":
            # Some servers ignore `stream: true` and answer whole; stream that answer.
            yield started
            yield completion_events(parse_completion(await self.transport.read_json(response), self.name))
            return
        parser = ChunkParser(self.name)
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

    async def complete(self, request: ChatRequest) -> Completion:
        response = await self._post(request, stream=False)
        completion = parse_completion(await self.transport.read_json(response), self.name)
        completion.origin = Started(upstream_model=self._model(request))
        return completion

    async def count_tokens(self, request: ChatRequest) -> int | None:
        return None  # OpenAI-compatible servers have no standard endpoint for it


def _parse(events: list[SSEEvent], parser: ChunkParser, name: str) -> tuple[Batch, bool, GatewayError | None]:
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

