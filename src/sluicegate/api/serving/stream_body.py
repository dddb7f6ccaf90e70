"""A streamed answer's bytes: the door's encoder over the provider's events, keep-alives, and
the end (normal, failed mid-stream, or cut at the shutdown deadline) always in the door's wire."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Protocol

from sluicegate.api.serving.doors import with_request_id
from sluicegate.api.serving.observe import observe
from sluicegate.core.events import (
    Batch,
    LastBatch,
    Metadata,
    Started,
)
from sluicegate.core.exchange import Exchange
from sluicegate.errors import GatewayError
from sluicegate.gateway import Gateway
from sluicegate.http.event_stream import Closing, EventStreamResponse, KeepAlive
from sluicegate.http.shutdown import shutting_down
from sluicegate.http.sse import KEEPALIVE
from sluicegate.http.waiting import cancel

log = logging.getLogger("sluicegate.serving")


class StreamEncoder(Protocol):
    """A door's wire format for a streamed answer.

    An encoder may also have `keepalive() -> bytes`: what the door sends while the stream
    waits (Anthropic's door sends `event: ping`); without it, the SSE comment `: keep-alive`.
    It can be asked for before `open()`: a stream still waiting for its first events is
    committed by a keep-alive; if it then fails, `open()` and `fail()` follow at once.
    """

    def open(self, started: Started) -> bytes:
        """The first bytes, sent when the provider commits (before any token)."""
        ...

    def encode_batch(self, batch: Batch) -> bytes: ...

    def close(self) -> bytes:
        """The normal end: trailing events and the stream's terminator."""
        ...

    def fail(self, error: GatewayError) -> bytes:
        """A failure after the first byte: the door's error event and terminator."""
        ...


def keepalive_of(encoder: StreamEncoder) -> bytes:
    keepalive: Callable[[], bytes] | None = getattr(encoder, "keepalive", None)
    return keepalive() if keepalive is not None else KEEPALIVE


def event_stream(
    body: AsyncIterator[bytes],
    headers: list[tuple[bytes, bytes]],
    disconnect: asyncio.Future[None],
    encoder: StreamEncoder,
    gateway: Gateway,
    exchange: Exchange,
    waiting: bool,
) -> EventStreamResponse:
    settings = gateway.keepalive
    keepalive = None
    if settings is not None:
        keepalive = KeepAlive(
            keepalive_of(encoder), settings.first_s, settings.interval_s, lambda: progress_note(exchange)
        )
    return EventStreamResponse(
        body, headers, disconnect, keepalive, gateway.shutdown, keepalive_at_once=waiting
    )


def progress_note(exchange: Exchange) -> bytes:
    """An SSE comment line on how much of a long prompt is read, sent before a keep-alive
    (every SSE reader skips comments; no door's wire has an event for it)."""
    progress = exchange.prompt_progress
    if progress is None or progress[0] >= progress[1]:
        return b""
    return b": prompt: %d of %d tokens read\n" % progress


async def stream_body(
    encoder: StreamEncoder,
    events: AsyncGenerator[Batch, None],
    exchange: Exchange,
    gateway: Gateway,
    before_close: Callable[[], Awaitable[None]] | None = None,
    first: Batch | None = None,
    pending: asyncio.Future[Batch | None] | None = None,
) -> AsyncIterator[bytes]:
    """The stream's bytes. With `pending`, a keep-alive is already out and the first events
    are still coming: their failure then arrives as the door's error event like any other.
    Cancelled at the shutdown deadline, the stream ends with the error event too."""
    opened = False
    held = b""  # a last batch's bytes, sent with the closing ones
    try:
        if pending is not None:
            first = await pending or []
            observe(exchange, first)
        first = first or []
        last = type(first) is LastBatch
        started = next((event for event in first if isinstance(event, Started)), Started())
        if any(type(event) is Metadata for event in first):
            # known before the first byte: let the opening bytes carry it (system_fingerprint)
            encoder.encode_batch([event for event in first if type(event) is Metadata])
            first = [event for event in first if type(event) is not Metadata]
        opening = encoder.open(started) + encoder.encode_batch(first)
        opened = True
        first = pending = None  # not kept while the stream lasts (memory per held stream)
        if last:
            held = opening
        elif opening:
            yield opening
        del opening
        async for batch in events:
            observe(exchange, batch)
            data = encoder.encode_batch(batch)
            if held:  # more after a last batch: still in order
                data, held = held + data, b""
            if type(batch) is LastBatch:
                held = data
            elif data:
                yield data
            del batch, data  # written: not kept while the stream waits for more
        closing = encoder.close()
        if before_close is not None:
            await before_close()
        yield Closing(held + closing)
    except GatewayError as exc:
        log.warning("request %s: stream failed after the first byte: %s", exchange.request_id, exc.message)
        with_request_id(exc, exchange.request_id)
        exchange.failed(exc.http_status, exc.error_type, exc.code, exc.message)
        yield Closing(held + await _last_words(encoder, exc, opened, before_close))
    except asyncio.CancelledError:
        if not gateway.shutdown.over:
            exchange.client_gone = True
            exchange.status = 499
            raise
        stopping = shutting_down()
        exchange.failed(stopping.http_status, stopping.error_type, stopping.code, stopping.message)
        if pending is not None:
            await cancel(pending)
        await events.aclose()  # the model stops now, before the last bytes go out
        yield Closing(held + await _last_words(encoder, stopping, opened, before_close))
    except GeneratorExit:
        exchange.client_gone = True
        exchange.status = 499
        raise
    except Exception as exc:
        log.exception("request %s: stream failed after the first byte", exchange.request_id)
        error = GatewayError(f"The gateway failed mid-stream ({type(exc).__name__}).")
        with_request_id(error, exchange.request_id)
        exchange.failed(500, error.error_type, error.code, error.message)
        yield Closing(held + await _last_words(encoder, error, opened, before_close))
    finally:
        if pending is not None:
            await cancel(pending)
        await events.aclose()
        if exchange.transcript is not None:
            exchange.output_parts = exchange.transcript()  # the byte relay's text, decoded once
        gateway.settle(exchange)


async def _last_words(
    encoder: StreamEncoder,
    error: GatewayError,
    opened: bool,
    before_close: Callable[[], Awaitable[None]] | None,
) -> bytes:
    """The door's error event and terminator; after its opening bytes if the stream failed
    while it still waited for its first events (behind keep-alives), so every door's stream
    starts as that door's streams do (OpenAI's role chunk, `response.created`...)."""
    closing = (b"" if opened else encoder.open(Started())) + encoder.fail(error)
    if before_close is not None:
        await before_close()
    return closing
