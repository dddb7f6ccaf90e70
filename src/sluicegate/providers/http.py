"""The HTTP transport every upstream provider shares: one pooled aiohttp session per model
entry, its timeouts, and the mapping of network failures to gateway errors in plain words.

Each provider brings only what differs: the URL and headers it posts to, and how its
upstream's error bodies read (`ErrorMapper`). The details of a network failure (hosts, ports,
aiohttp's exception text) go to the log, never to the client.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Callable, Mapping
from typing import Any, Generic, TypeVar
from urllib.parse import unquote

import aiohttp
import orjson
from yarl import URL

from sluicegate.core.request import WireFormat
from sluicegate.errors import (
    ConnectionsBusyError,
    GatewayError,
    InvalidRequestError,
    UpstreamConfigError,
    UpstreamError,
    UpstreamTimeoutError,
)
from sluicegate.http.sse import SSEDecoder, SSEEvent
from sluicegate.model_config.entry import HTTPModelEntry

log = logging.getLogger("sluicegate.providers")

# (status, body, response headers) -> the error the client gets
ErrorMapper = Callable[[int, bytes, Mapping[str, str]], GatewayError]


class _PoolWait:
    """A request's wait for a pooled connection, told by aiohttp's trace signals: past
    `limit` seconds in the queue, the waiting task is cancelled and the request is refused."""

    __slots__ = ("expired", "limit", "task", "timer")

    def __init__(self, limit: float) -> None:
        self.limit = limit
        self.expired = False
        self.task: asyncio.Task[Any] | None = None
        self.timer: asyncio.TimerHandle | None = None

    def queued(self) -> None:
        self.task = asyncio.current_task()
        self.timer = asyncio.get_running_loop().call_later(self.limit, self._expire)

    def dequeued(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _expire(self) -> None:
        self.timer = None
        if self.task is not None:
            self.expired = True
            self.task.cancel()


async def _queued(_: object, context: Any, __: object) -> None:
    if isinstance(context.trace_request_ctx, _PoolWait):
        context.trace_request_ctx.queued()


async def _dequeued(_: object, context: Any, __: object) -> None:
    if isinstance(context.trace_request_ctx, _PoolWait):
        context.trace_request_ctx.dequeued()


_POOL_WAITS = aiohttp.TraceConfig()
_POOL_WAITS.on_connection_queued_start.append(_queued)
_POOL_WAITS.on_connection_queued_end.append(_dequeued)
_POOL_WAITS.freeze()


def describe(exc: BaseException, stage: str = "") -> str:
    """What went wrong on the wire, in words a client can act on. `stage`: "" (sending the
    request and waiting for the status), "answer" (reading a whole answer), "stream" (mid-stream)."""
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return "could not be reached in time (connect timeout)"
    if isinstance(exc, TimeoutError):
        if stage == "stream":
            return "went silent mid-stream for longer than the idle timeout"
        if stage == "answer":
            return "did not finish its answer in time"
        return "did not start answering in time"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "could not be reached (host name not found)"
    if isinstance(exc, aiohttp.ClientSSLError):
        return "could not be reached (TLS handshake failed)"
    if isinstance(exc, aiohttp.ClientConnectorError):
        if isinstance(exc.os_error, ConnectionRefusedError):
            return "could not be reached (connection refused)"
        return "could not be reached"
    if isinstance(exc, aiohttp.InvalidURL):
        return "has an invalid base_url"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "closed the connection mid-stream" if stage == "stream" else "closed the connection before answering"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "closed the stream early" if stage == "stream" else "sent an incomplete answer"
    if isinstance(exc, aiohttp.ClientResponseError):
        return "sent a malformed HTTP response"
    if isinstance(exc, aiohttp.ClientOSError | ConnectionError):
        return "reset the connection mid-stream" if stage == "stream" else "reset the connection"
    return "failed on the network"


class HTTPTransport:
    def __init__(self, config: HTTPModelEntry, map_error: ErrorMapper) -> None:
        self.config = config
        self.name = config.name
        self._map_error = map_error
        self._session: aiohttp.ClientSession | None = None
        self._base_path = URL(config.base_url).path.rstrip("/")
        # Until the status arrives the wait is bounded by the first-byte timeout; afterwards by
        # the idle timeout between reads (set on the connection once the headers are in).
        first_byte = config.first_byte_timeout_s or config.read_timeout_s
        self._idle_timeout = config.read_timeout_s
        self._stream_timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=config.connect_timeout_s, sock_read=first_byte
        )
        self._whole_answer_timeout = aiohttp.ClientTimeout(
            total=config.timeout_s, sock_connect=config.connect_timeout_s, sock_read=first_byte
        )

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=self.config.max_connections, ttl_dns_cache=300)
        # Streams may last as long as they keep talking: no total, but a bound on silence.
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self.config.connect_timeout_s, sock_read=self.config.read_timeout_s
        )
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=timeout, auto_decompress=True, trace_configs=[_POOL_WAITS]
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def failure(self, exc: BaseException, stage: str = "") -> UpstreamError:
        """The gateway error for a network failure; the detail goes to the log."""
        what = describe(exc, stage)
        log.warning("upstream of %s %s: %r", self.name, what, exc)
        cls: type[UpstreamError] = UpstreamError
        if isinstance(exc, TimeoutError):
            cls = UpstreamTimeoutError
        elif isinstance(exc, aiohttp.InvalidURL):
            cls = UpstreamConfigError
        return cls(f"The upstream of `{self.name}` {what}.")

    async def post(
        self, url: str, body: bytes, headers: dict[str, str], *, stream: bool
    ) -> aiohttp.ClientResponse:
        """POST and wait for the status; an error status is read and raised as a GatewayError."""
        if self._session is None:
            raise UpstreamError(f"The provider for `{self.name}` is not started.")
        target = URL(url, encoded=True)  # sent as built: the escapes of a model name are kept
        if not _within(target.raw_path, self._base_path):
            # a model name made the path leave the entry's base URL: never sent, whatever the name
            log.warning("upstream of %s: refused to send a request to %s", self.name, target.path[:200])
            raise InvalidRequestError(
                "The model name cannot be sent to its upstream.", param="model", code="invalid_model_name"
            )
        waiting = _PoolWait(self.config.pool_timeout_s)
        try:
            timeout = self._stream_timeout if stream else self._whole_answer_timeout
            response = await self._session.post(
                target, data=body, headers=headers, timeout=timeout, trace_request_ctx=waiting
            )
        except asyncio.CancelledError:
            if waiting.expired and waiting.task is not None and waiting.task.uncancel() == 0:
                raise self._pool_full() from None
            raise
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise self.failure(exc) from exc
        finally:
            waiting.dequeued()
        connection = response.connection
        if connection is not None and connection.protocol is not None:
            connection.protocol.read_timeout = self._idle_timeout
        if response.status >= 400:
            try:
                raw = await response.read()
            except (TimeoutError, aiohttp.ClientError, OSError):
                raw = b""
            finally:
                response.release()
            error = self._map_error(response.status, raw, response.headers)
            # a refused key, URL or model is the operator's to fix: said louder, with the entry
            level = logging.ERROR if isinstance(error, UpstreamConfigError) else logging.WARNING
            log.log(
                level,
                "upstream of %s answered %d%s: %s",
                self.name,
                response.status,
                " (fix this model entry)" if level == logging.ERROR else "",
                raw[:500].decode(errors="replace"),
            )
            raise error
        return response

    def _pool_full(self) -> ConnectionsBusyError:
        limit = self.config.max_connections
        log.warning(
            "upstream of %s: all %d connections busy for %g s (raise max_connections)",
            self.name,
            limit,
            self.config.pool_timeout_s,
        )
        return ConnectionsBusyError(
            f"All {limit} upstream connections of `{self.name}` are busy; retry shortly.", retry_after=1
        )

    async def read_json(self, response: aiohttp.ClientResponse) -> Any:
        """A whole JSON answer; a broken or non-JSON body is the upstream's failure (502)."""
        try:
            raw = await response.read()
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise self.failure(exc, "answer") from exc
        finally:
            response.release()
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            log.warning("upstream of %s sent invalid JSON: %r", self.name, raw[:300])
            raise UpstreamError(f"The upstream of `{self.name}` sent an answer that is not valid JSON.") from exc

    async def reads(
        self, response: aiohttp.ClientResponse, *, arrived_first: bool = False
    ) -> AsyncGenerator[bytes, None]:
        """The body of a streamed answer, a network read at a time. Closing the generator early
        closes the connection (the upstream sees the client leave); a body read to its end
        goes back to the pool.

        With `arrived_first`, the first read is at once what arrived with the status (often
        the whole of a short answer, often nothing): a provider sends it with its start, so
        the client gets one write where it got two, and nothing waits longer than before."""
        try:
            if arrived_first:
                yield response.content.read_nowait()
            async for data in response.content.iter_any():
                yield data
                del data  # passed on: not kept while the stream waits for more
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise self.failure(exc, "stream") from exc
        finally:
            response.release()  # closes the connection unless the body was read to its end

    async def events(
        self, response: aiohttp.ClientResponse, *, arrived_first: bool = False
    ) -> AsyncGenerator[list[SSEEvent], None]:
        """The SSE events of a streamed answer, one list per network read (with `arrived_first`,
        the first list at once, as in `reads`), the last one flushed at the end of the body."""
        decoder = SSEDecoder()
        reads = self.reads(response, arrived_first=arrived_first)
        try:
            first = arrived_first
            async for data in reads:
                events = decoder.feed(data)
                if events or first:
                    first = False
                    yield events
            events = decoder.flush()
            if events:
                yield events
        finally:
            await reads.aclose()


def _within(path: str, base: str) -> bool:
    """Whether a request path stays under the base URL's path, read as a lenient server would
    (percent-decoded, backslashes as slashes, dot segments resolved)."""
    segments: list[str] = []
    for segment in unquote(path).replace("\\", "/").split("/"):
        if segment == "..":
            if segments:
                segments.pop()
        elif segment != ".":
            segments.append(segment)
    resolved = "/".join(segments)
    return resolved == base or resolved.startswith(base + "/")


ConfigT = TypeVar("ConfigT", bound=HTTPModelEntry)


class UpstreamProvider(Generic[ConfigT]):
    """What every HTTP upstream provider shares: its entry, the pooled transport, the credential
    header, and which upstream model a request goes to (a wildcard's, else the entry's)."""

    kind = ""
    native_formats: frozenset[WireFormat] = frozenset()
    relay_formats: frozenset[WireFormat] = frozenset()
    continues_final = False  # see providers/base.py

    def __init__(
        self,
        config: ConfigT,
        map_error: ErrorMapper,
        owned_by: str,
        auth_header: tuple[str, str] | None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.config = config
        self.name = config.name
        self.owned_by = config.owned_by or owned_by
        self.upstream_model = config.upstream_model or config.name
        self._headers = {**(headers or {}), **config.headers}
        if config.api_key and auth_header is not None:
            name, prefix = auth_header
            self._headers[name] = prefix + config.api_key
        self.transport = HTTPTransport(config, map_error)

    async def start(self) -> None:
        await self.transport.start()

    async def close(self) -> None:
        await self.transport.close()

    def _model(self, request: Any) -> str:
        upstream: str | None = request.upstream_model
        return upstream or self.upstream_model

    def encode(self, build: Callable[[], Any]) -> bytes:
        """The upstream's request body. A failure here is the gateway's, before any upstream
        was asked: a 500 that is not retried elsewhere and counts against no deployment."""
        try:
            return orjson.dumps(build())
        except GatewayError:
            raise
        except Exception as exc:
            log.exception("%s: the request could not be encoded for the upstream", self.name)
            raise GatewayError(
                f"The gateway could not encode the request for `{self.name}` ({type(exc).__name__}).",
                code="request_encoding_failed",
            ) from exc


def loads_event(data: str, name: str) -> Any:
    """One event's JSON payload; invalid JSON is the upstream's failure."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        log.warning("upstream of %s sent invalid JSON in its stream: %r", name, data[:300])
        raise UpstreamError(f"The upstream of `{name}` sent malformed data in its stream.") from exc
