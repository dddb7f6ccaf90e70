"""Any OpenAI-compatible upstream: OpenAI, vLLM, llama.cpp server, Ollama, Groq...

The client's body is forwarded as sent (unknown fields included) with only the model name
swapped, so features the gateway does not know about still reach servers that do.
One pooled aiohttp session per upstream; closing the event iterator closes the connection.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator
from typing import Any

import aiohttp
import orjson

from sluicegate.core.completion import Choice, Completion, ToolCall, completion_events
from sluicegate.core.events import Batch, Started
from sluicegate.core.request import ChatRequest
from sluicegate.errors import GatewayError, UpstreamError, UpstreamTimeoutError
from sluicegate.http.sse import SSEDecoder, SSEEvent
from sluicegate.providers.openai.chunks import ChunkParser, parse_usage
from sluicegate.providers.openai.errors import upstream_error
from sluicegate.settings import ModelConfig

log = logging.getLogger("sluicegate.providers.openai")


class OpenAIProvider:
    def __init__(self, config: ModelConfig) -> None:
        self.config = config
        self.name = config.name
        self.owned_by = config.owned_by or "openai-compatible"
        self.upstream_model = config.upstream_model or config.name
        self.url = f"{config.base_url}/chat/completions"
        self._headers = {"Content-Type": "application/json", **config.headers}
        if config.api_key:
            self._headers["Authorization"] = f"Bearer {config.api_key}"
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=self.config.max_connections, ttl_dns_cache=300)
        # Streams may last as long as they keep talking: no total, but a bound on silence.
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self.config.connect_timeout_s, sock_read=self.config.read_timeout_s
        )
        self._whole_answer_timeout = aiohttp.ClientTimeout(
            total=self.config.timeout_s,
            sock_connect=self.config.connect_timeout_s,
            sock_read=self.config.read_timeout_s,
        )
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=timeout, json_serialize=lambda o: orjson.dumps(o).decode()
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def _body(self, request: ChatRequest, stream: bool) -> bytes:
        body: dict[str, Any] = dict(request.body)
        body["model"] = self.upstream_model
        body["stream"] = stream
        if stream:
            options = dict(body.get("stream_options") or {})
            options["include_usage"] = True
            body["stream_options"] = options
        else:
            body.pop("stream_options", None)
        return orjson.dumps(body)

    async def _post(self, request: ChatRequest, stream: bool) -> aiohttp.ClientResponse:
        if self._session is None:
            raise UpstreamError(f"The provider for `{self.name}` is not started.")
        try:
            # (passing timeout=None would switch the session's timeouts off: stream keeps them)
            extra: dict[str, Any] = {} if stream else {"timeout": self._whole_answer_timeout}
            response = await self._session.post(
                self.url, data=self._body(request, stream), headers=self._headers, **extra
            )
        except TimeoutError as exc:
            raise UpstreamTimeoutError(f"The upstream of `{self.name}` did not answer in time.") from exc
        except aiohttp.ClientError as exc:
            # The details name the upstream's host and port: for the log, not for the client.
            log.warning("could not reach the upstream of %s at %s: %s", self.name, self.url, exc)
            raise UpstreamError(
                f"Could not reach the upstream of `{self.name}` ({type(exc).__name__})."
            ) from exc
        if response.status >= 400:
            try:
                body = await response.read()
            finally:
                response.release()
            raise upstream_error(response.status, body, response.headers.get("Retry-After"), self.name)
        return response

    async def stream(self, request: ChatRequest) -> AsyncGenerator[Batch, None]:
        response = await self._post(request, stream=True)
        yield [Started()]
        if response.content_type == "application/json":
            # Some servers ignore `stream: true` and answer whole; stream that answer.
            yield completion_events(await self._read_completion(response))
            return
        decoder = SSEDecoder()
        parser = ChunkParser()
        saw_done = False
        try:
            async for data in response.content.iter_any():
                batch, saw_done, error = _parse(decoder.feed(data), parser)
                if batch:
                    yield batch
                if error is not None:
                    raise error
                if saw_done:
                    break
            if not saw_done:
                batch, saw_done, error = _parse(decoder.flush(), parser)
                if batch:
                    yield batch
                if error is not None:
                    raise error
            batch = parser.close(saw_done)
            if batch:
                yield batch
        except TimeoutError as exc:
            raise UpstreamTimeoutError(f"The upstream of `{self.name}` stopped sending in time.") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"The upstream of `{self.name}` broke the stream: {exc}") from exc
        finally:
            if saw_done:
                response.release()
            else:
                response.close()

    async def complete(self, request: ChatRequest) -> Completion:
        return await self._read_completion(await self._post(request, stream=False))

    async def _read_completion(self, response: aiohttp.ClientResponse) -> Completion:
        try:
            raw = await response.read()
        except TimeoutError as exc:
            raise UpstreamTimeoutError(f"The upstream of `{self.name}` did not answer in time.") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"The upstream of `{self.name}` broke the answer: {exc}") from exc
        finally:
            response.release()
        return parse_completion(_loads(raw.decode("utf-8", errors="replace")))


def _parse(events: list[SSEEvent], parser: ChunkParser) -> tuple[Batch, bool, GatewayError | None]:
    """The canonical events of one network read, whether it held `[DONE]`, and the error
    that interrupted it (returned, so the events before it still reach the client)."""
    batch: Batch = []
    for sse in events:
        if sse.data == "[DONE]":
            return batch, True, None
        try:
            batch += parser.parse(_loads(sse.data))
        except GatewayError as exc:
            return batch, False, exc
    return batch, False, None


def _loads(data: str) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise UpstreamError(f"The upstream sent invalid JSON: {data[:200]!r}") from exc


_KNOWN_MESSAGE_KEYS = frozenset({"role", "content", "tool_calls", "reasoning_content", "reasoning"})


def parse_completion(body: Any) -> Completion:
    if not isinstance(body, dict) or not isinstance(body.get("choices"), list):
        raise UpstreamError("The upstream answered without a `choices` list.")
    choices: list[Choice] = []
    for position, raw in enumerate(body["choices"]):
        message = raw.get("message") or {}
        calls = [
            ToolCall(
                id=str(call.get("id") or ""),
                name=str((call.get("function") or {}).get("name") or ""),
                arguments=str((call.get("function") or {}).get("arguments") or ""),
            )
            for call in message.get("tool_calls") or ()
        ]
        extra = {k: v for k, v in message.items() if k not in _KNOWN_MESSAGE_KEYS}
        if raw.get("logprobs") is not None:
            extra["logprobs"] = raw["logprobs"]
        choices.append(
            Choice(
                index=int(raw.get("index", position)),
                content=message.get("content"),
                reasoning=message.get("reasoning_content") or message.get("reasoning"),
                tool_calls=calls,
                finish_reason=raw.get("finish_reason") or "stop",
                extra=extra,
            )
        )
    return Completion(
        choices=choices,
        usage=parse_usage(body.get("usage")),
        system_fingerprint=body.get("system_fingerprint"),
    )
