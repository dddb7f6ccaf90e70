"""Anthropic's Messages API (`POST {base_url}/v1/messages`), streamed or whole.

The gateway's own key for the upstream goes in `x-api-key` with the configured
`anthropic-version`; the client's sluicegate key never leaves the gateway.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import aiohttp

from sluicegate.core.completion import Completion, completion_events
from sluicegate.core.events import Batch, Started
from sluicegate.core.request import ChatRequest, WireFormat
from sluicegate.errors import GatewayError, UpstreamError
from sluicegate.http.sse import SSEEvent
from sluicegate.providers.anthropic.config import AnthropicConfig
from sluicegate.providers.anthropic.errors import upstream_error
from sluicegate.providers.anthropic.relay import MessagesRelay
from sluicegate.providers.anthropic.request import count_tokens_body, messages_body
from sluicegate.providers.anthropic.response import parse_message
from sluicegate.providers.anthropic.stream import MessageStreamParser
from sluicegate.providers.http import UpstreamProvider, loads_event


class AnthropicProvider(UpstreamProvider[AnthropicConfig]):
    kind = "anthropic"
    native_formats: frozenset[WireFormat] = frozenset({"anthropic_messages"})
    continues_final = True  # a trailing assistant message is prefill, natively

    def __init__(self, config: AnthropicConfig) -> None:
        super().__init__(
            config,
            lambda status, body, headers: upstream_error(status, body, headers, config.name),
            "anthropic",
            ("x-api-key", ""),
            {"content-type": "application/json", "anthropic-version": config.anthropic_version},
        )
        self.url = f"{config.base_url}/v1/messages"
        if config.passthrough:
            self.relay_formats = frozenset({"anthropic_messages"})
        self.count_url = f"{config.base_url}/v1/messages/count_tokens"

    async def _post(self, request: ChatRequest, stream: bool) -> aiohttp.ClientResponse:
        body = self.encode(
            lambda: messages_body(request, self._model(request), stream, self.config.default_max_tokens)
        )
        headers = self._headers
        native = request.native_body
        if native is not None and native.headers:
            headers = {**native.headers, **self._headers}  # the entry's own headers win
        return await self.transport.post(self.url, body, headers, stream=stream)

    async def stream(self, request: ChatRequest) -> AsyncGenerator[Batch, None]:
        response = await self._post(request, stream=True)
        started: Batch = [Started(upstream_model=self._model(request))]
        if response.content_type == "application/json":
            # a proxy that ignored `stream: true` and answered whole
            yield started
            answer = await self.transport.read_json(response)
            yield completion_events(parse_message(answer, self.name, request.native_body is None))
            return
        if request.byte_relay is not None:
            async for batch in self._relayed(response, started, request.native_body is None):
                yield batch
            return
        parser = MessageStreamParser(self.name, explain_refusals=request.native_body is None)
        events = self.transport.events(response, arrived_first=True)
        try:
            # Read to the end of the body, as Anthropic's SDKs do: the connection goes back
            # to the pool instead of being closed after message_stop.
            async for sse_events in events:
                batch, error = _parse(sse_events, parser, self.name)
                if started:  # the first list, given at once: the start goes with what arrived
                    batch, started = started + batch, []
                if batch:
                    yield batch
                if error is not None:
                    raise error
            batch = parser.close()
            if batch:
                yield batch
        finally:
            await events.aclose()

    async def _relayed(
        self, response: aiohttp.ClientResponse, started: Batch, explain_refusals: bool
    ) -> AsyncGenerator[Batch, None]:
        """`stream` with the byte relay (providers/anthropic/relay.py): the text events' pieces
        as the upstream wrote them, the other events translated; batched as `stream` batches."""
        relay = MessagesRelay(self.name, explain_refusals)
        started[0].transcript = relay.transcript  # type: ignore[union-attr]
        reads = self.transport.reads(response, arrived_first=True)
        try:
            async for data in reads:  # to the end of the body, as `stream` reads it
                batch, error = relay.feed(data)
                if started:  # the first read, given at once: the start goes with what arrived
                    batch, started = started + batch, []
                if batch:
                    yield batch
                if error is not None:
                    raise error
                del data, batch  # passed on: not kept while the stream waits for more
            batch = started + relay.close()
            if batch:
                yield batch
        finally:
            await reads.aclose()

    async def complete(self, request: ChatRequest) -> Completion:
        response = await self._post(request, stream=False)
        answer = await self.transport.read_json(response)
        completion = parse_message(answer, self.name, request.native_body is None)
        completion.origin = Started(upstream_model=self._model(request))
        return completion

    async def count_tokens(self, request: ChatRequest) -> int | None:
        """Anthropic's own count (POST /v1/messages/count_tokens): exact, tools and images included."""
        body = self.encode(lambda: count_tokens_body(request, self._model(request)))
        response = await self.transport.post(self.count_url, body, self._headers, stream=False)
        answer: Any = await self.transport.read_json(response)
        tokens = answer.get("input_tokens") if isinstance(answer, dict) else None
        if not isinstance(tokens, int) or isinstance(tokens, bool):
            raise UpstreamError(
                f"The upstream of `{self.name}` answered count_tokens without `input_tokens`."
            )
        return tokens


def _parse(
    events: list[SSEEvent], parser: MessageStreamParser, name: str
) -> tuple[Batch, GatewayError | None]:
    """The canonical events of one network read, and the error that interrupted it (returned,
    so the events before it still reach the client)."""
    batch: Batch = []
    for sse in events:
        try:
            parser.parse(loads_event(sse.data, name), batch)
        except GatewayError as exc:
            return batch, exc
    return batch, None
