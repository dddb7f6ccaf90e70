"""Google's Gemini API (`generativelanguage.googleapis.com`) behind the OpenAI wire format.

`streamGenerateContent?alt=sse` for streams, `generateContent` for whole answers,
`countTokens` for exact prompt sizes; the gateway's own key goes in `x-goog-api-key`, never
the client's.

A Gemini stream commits in its first event, not with its 200: a prompt Gemini blocks is a 200
whose first event says so. So the stream's first batch (and with it the client's first byte)
waits for that event, and a blocked prompt or an early upstream error is still a plain HTTP
error. Tokens are not delayed by it: the first event is the first token.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from urllib.parse import quote

import aiohttp

from sluicegate.core.completion import Completion
from sluicegate.core.embeddings import EmbeddingRequest, Embeddings, input_tokens_estimate
from sluicegate.core.events import Batch, Started
from sluicegate.core.request import ChatRequest, WireFormat
from sluicegate.errors import GatewayError, InvalidRequestError, UpstreamError
from sluicegate.http.sse import SSEEvent
from sluicegate.providers.gemini.config import GeminiConfig
from sluicegate.providers.gemini.errors import upstream_error
from sluicegate.providers.gemini.request import gemini_body
from sluicegate.providers.gemini.response import parse_response
from sluicegate.providers.gemini.stream import StreamParser
from sluicegate.providers.http import UpstreamProvider, loads_event


class GeminiProvider(UpstreamProvider[GeminiConfig]):
    kind = "gemini"
    native_formats: frozenset[WireFormat] = frozenset({"gemini_generate_content"})

    def __init__(self, config: GeminiConfig) -> None:
        super().__init__(
            config,
            lambda status, body, headers: upstream_error(
                status, body, headers, config.name, config.is_wildcard
            ),
            "google",
            ("x-goog-api-key", ""),
            {"Content-Type": "application/json"},
        )
        self.wildcard = config.is_wildcard

    def url(self, model: str, method: str) -> str:
        """`models/gemini-2.5-flash` style paths, the name one encoded path segment; an
        operator's `upstream_model` naming its resource (`tunedModels/x`) keeps its slash."""
        return f"{self.config.base_url}/{self.config.api_version}/{self._resource(model)}:{method}"

    def _resource(self, model: str) -> str:
        collection, slash, rest = model.partition("/")
        if slash and model == self.upstream_model and collection and rest and "/" not in rest:
            return f"{quote(collection, safe='')}/{quote(rest, safe='')}"
        return f"models/{quote(model, safe='')}"

    async def _post(self, request: ChatRequest, model: str, stream: bool) -> aiohttp.ClientResponse:
        body = self.encode(lambda: gemini_body(request, model, self.config))
        url = (
            self.url(model, "streamGenerateContent") + "?alt=sse"
            if stream
            else self.url(model, "generateContent")
        )
        return await self.transport.post(url, body, self._headers, stream=stream)

    async def stream(self, request: ChatRequest) -> AsyncGenerator[Batch, None]:
        model = self._model(request)
        response = await self._post(request, model, stream=True)
        parser = StreamParser(self.name, self.wildcard)
        started = False
        events = self.transport.events(response)
        try:
            async for sse_events in events:
                batch, error = _parse(sse_events, parser, self.name)
                if not started:
                    if not batch:
                        if error is not None:
                            raise error  # before the first byte: a plain HTTP error
                        continue
                    started = True
                    batch.insert(0, Started(upstream_model=model))
                if batch:
                    yield batch
                if error is not None:
                    raise error
            tail = parser.close()
            if not started:
                tail.insert(0, Started(upstream_model=model))
            if tail:
                yield tail
        finally:
            await events.aclose()

    async def complete(self, request: ChatRequest) -> Completion:
        model = self._model(request)
        response = await self._post(request, model, stream=False)
        completion = parse_response(await self.transport.read_json(response), self.name, self.wildcard)
        completion.origin = Started(upstream_model=model)
        return completion

    async def count_tokens(self, request: ChatRequest) -> int | None:
        """Gemini's own count of the whole prompt (system instruction and tools included)."""
        model = self._model(request)
        path = model if model == self.upstream_model and "/" in model else f"models/{model}"
        body = self.encode(
            lambda: {"generateContentRequest": {"model": path, **gemini_body(request, model, self.config)}}
        )
        response = await self.transport.post(
            self.url(model, "countTokens"), body, self._headers, stream=False
        )
        answer = await self.transport.read_json(response)
        total = answer.get("totalTokens") if isinstance(answer, dict) else None
        if not isinstance(total, int):
            raise UpstreamError(f"The upstream of `{self.name}` answered countTokens without `totalTokens`.")
        return total

    async def embed(self, request: EmbeddingRequest) -> Embeddings:
        """`embedContent` for one input, `batchEmbedContents` for more (one round trip);
        `dimensions` is Gemini's `outputDimensionality`. Gemini reports no token count: the
        ledger gets the gateway's estimate."""
        if request.tokenized:
            raise InvalidRequestError(
                f"The model `{request.model}` (Gemini) takes text, not token ids: send `input` as strings.",
                param="input",
            )
        model = self._model(request)
        # an operator's own `tunedModels/x` keeps its slash; a client's name is one model id
        path = model if model == self.upstream_model and "/" in model else f"models/{model}"
        items = [_embed_item(path, str(text), request.dimensions) for text in request.inputs]
        single = len(items) == 1
        body = self.encode(lambda: items[0] if single else {"requests": items})
        method = "embedContent" if single else "batchEmbedContents"
        response = await self.transport.post(self.url(model, method), body, self._headers, stream=False)
        answer = await self.transport.read_json(response)
        found = [answer.get("embedding")] if single else answer.get("embeddings")
        vectors: list[list[float]] = [
            item["values"] for item in found or () if isinstance(item, dict) and isinstance(item.get("values"), list)
        ]
        if len(vectors) != len(items):
            raise UpstreamError(f"The upstream of `{self.name}` answered {method} without a vector per input.")
        return Embeddings(
            vectors=vectors,
            prompt_tokens=input_tokens_estimate(request),
            estimated=True,
            origin=Started(upstream_model=model),
        )


def _embed_item(path: str, text: str, dimensions: int | None) -> dict[str, object]:
    item: dict[str, object] = {"model": path, "content": {"parts": [{"text": text}]}}
    if dimensions is not None:
        item["outputDimensionality"] = dimensions
    return item


def _parse(events: list[SSEEvent], parser: StreamParser, name: str) -> tuple[Batch, GatewayError | None]:
    """The canonical events of one network read, and the error that interrupted it (returned,
    so the events before it still reach the client)."""
    batch: Batch = []
    for sse in events:
        if not sse.data or sse.data == "[DONE]":
            continue
        try:
            batch += parser.parse(loads_event(sse.data, name))
        except GatewayError as exc:
            return batch, exc
    return batch, None
