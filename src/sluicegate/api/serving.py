"""What every front door shares: authentication, routing, the hooks, the first-byte boundary,
the client leaving, and settling the exchange. A door brings only its own wire format: how it
finds the key, how it renders an error, and how it encodes canonical events.

Everything that can fail is tried before the first byte (auth, body, model, admission, the
provider's first event), so those failures are ordinary HTTP errors in the door's shape. Once
the first byte is out, a failure becomes the door's error event and its stream terminator.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from starlette.requests import Request
from starlette.responses import Response

from sluicegate.core.cache import HEADER, Plan, ResponseCache, complete, plan_for, replay, size_of
from sluicegate.core.completion import Completion, collect, completion_events, fold_events
from sluicegate.core.events import (
    Batch,
    Event,
    Finish,
    LastBatch,
    Metadata,
    PromptProgress,
    RawText,
    ReasoningDelta,
    RefusalDelta,
    Seam,
    Started,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from sluicegate.core.exchange import Exchange
from sluicegate.core.request import ChatRequest, WireFormat
from sluicegate.errors import AuthenticationError, GatewayError
from sluicegate.gateway import Gateway
from sluicegate.http.event_stream import Closing, EventStreamResponse, KeepAlive, watch_disconnect
from sluicegate.http.request_id import choose_request_id
from sluicegate.http.shutdown import shutting_down
from sluicegate.http.sse import KEEPALIVE
from sluicegate.http.waiting import Outcome, cancel, wait_for_work
from sluicegate.http.waiting import unless_client_leaves as unless_client_leaves  # for the doors
from sluicegate.wiring.registry import Route

log = logging.getLogger("sluicegate.serving")
T = TypeVar("T")


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


@dataclass(frozen=True, slots=True)
class Door:
    name: str  # chat_completions | messages | responses
    secret: Callable[[Request], str | None]  # the API key the client sent, in this door's header
    render_error: Callable[[GatewayError], Response]


Handler = Callable[[Request, Exchange, Gateway], Awaitable[Response | EventStreamResponse]]


def bearer_secret(request: Request) -> str | None:
    authorization = request.headers.get("authorization")
    if not authorization:
        return None
    scheme, _, secret = authorization.partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret:
        raise AuthenticationError("The Authorization header must be 'Bearer <API key>'.")
    return secret


def request_id(request: Request) -> str:
    """The id the request-id middleware chose (the client's own `x-request-id` when sane)."""
    chosen = request.scope.get("state", {}).get("request_id")
    return str(chosen) if chosen else choose_request_id(request.headers.get("x-request-id"))


def with_request_id(error: GatewayError, request_id: str) -> None:
    """A failure of the gateway or its upstream (5xx) names the request, so the client can
    point the operator at its log lines."""
    if error.http_status >= 500 and request_id not in error.message:
        error.message = f"{error.message} (request id {request_id})"


def keepalive_of(encoder: StreamEncoder) -> bytes:
    keepalive: Callable[[], bytes] | None = getattr(encoder, "keepalive", None)
    return keepalive() if keepalive is not None else KEEPALIVE


def door_endpoint(door: Door, handler: Handler) -> Callable[[Request], Awaitable[Response | EventStreamResponse]]:
    """A Starlette endpoint: authenticates, runs the door's handler, renders its errors in the
    door's shape, and settles whatever the handler admitted but did not finish."""

    async def endpoint(request: Request) -> Response | EventStreamResponse:
        gateway: Gateway = request.app.state.gateway
        exchange = Exchange(request_id=request_id(request), door=door.name)
        request.scope.setdefault("state", {})["exchange"] = exchange  # its own log line, after the last byte
        try:
            if gateway.shutdown.begun:
                raise shutting_down()
            key = await gateway.keys.resolve(door.secret(request))
            exchange.key_id, exchange.key_name = key.id, key.name
            response = await handler(request, exchange, gateway)
        except GatewayError as exc:
            with_request_id(exc, exchange.request_id)
            exchange.failed(exc.http_status, exc.error_type, exc.code, exc.message)
            if exc.deployment:  # routing tried upstreams before it gave up
                exchange.deployment, exchange.attempts = exc.deployment, exc.attempts
            gateway.settle(exchange)
            response = door.render_error(exc)
            response.headers.update(exchange.response_headers)
        except Exception as exc:
            log.exception("request %s failed: %s %s", exchange.request_id, request.method, request.url.path)
            error = GatewayError(f"The gateway failed to handle the request ({type(exc).__name__}).")
            with_request_id(error, exchange.request_id)
            exchange.failed(500, error.error_type, error.code, error.message)
            gateway.settle(exchange)
            response = door.render_error(error)
        if isinstance(response, Response):
            response.headers["x-request-id"] = exchange.request_id
        return response

    return endpoint


async def serve_chat(
    request: Request,
    exchange: Exchange,
    gateway: Gateway,
    chat: ChatRequest,
    stream_encoder: Callable[[str, Started], StreamEncoder],
    whole: Callable[[Completion, str], Response],
    before_close: Callable[[], Awaitable[None]] | None = None,
    relay: WireFormat | None = None,
) -> Response | EventStreamResponse:
    """Route the request, admit it, and answer it whole or as a stream through the door's
    encoder. `stream_encoder` and `whole` receive the model name the answer carries.
    `relay`: the door's own wire format, when its encoder writes text pieces as an upstream of
    that format wrote them (`RawText`): a stream not kept by the response cache then asks for
    the byte relay, which a provider speaking that format upstream gives (the others translate).
    `before_close` is awaited once a stream's answer is whole (or has failed), just before
    its closing bytes: a door that keeps its answers stores them there, so a client that
    has read the end can rely on finding them. It must not raise."""
    route = gateway.route(chat)
    chat = route.request(chat)
    exchange.model = chat.model
    exchange.request = chat
    exchange.provider = route.provider.kind
    exchange.served_by = route.provider.name
    exchange.upstream_model = chat.upstream_model or str(getattr(route.provider, "upstream_model", ""))
    exchange.stream = chat.stream
    plan, kept = await _cache_lookup(request, exchange, gateway, route, chat)
    await gateway.admit(exchange)
    chat.key_id = exchange.key_id
    disconnect = watch_disconnect(request.receive)
    if not chat.stream:
        # The embedded model's answer is folded here from its stream, noted as it comes, so
        # what it generated is known if the client leaves and the model is stopped.
        local = kept is None and route.provider.kind == "local"
        if kept is not None:
            answer = _from_cache(kept)
        elif local:
            answer = collect(_noted(route.provider.stream(chat), exchange))
        else:
            answer = route.provider.complete(chat)
        work = asyncio.ensure_future(answer)
        try:
            outcome = await wait_for_work(work, disconnect, gateway.shutdown, None)
        finally:
            disconnect.cancel()
        if outcome is Outcome.CLIENT_LEFT and not local:
            return _read_on_for_the_bill(work, exchange, gateway)
        if outcome is not Outcome.DONE:
            await cancel(work)
            if outcome is Outcome.CLIENT_LEFT:
                return _client_left(exchange, gateway)  # billed what the model generated until it stopped
            raise shutting_down()
        completion = work.result()
        if plan is not None and kept is None and gateway.cache is not None:
            batches = [completion_events(completion)]
            gateway.cache.put(plan.key, batches, plan.ttl_s, size_of(batches))
        if local:
            exchange.ttft_s = exchange.elapsed()  # a whole answer's first content is all of it
        else:
            _observe_completion(exchange, completion)
        response = whole(completion, route.model)
        response.headers.update(_answer_headers(exchange))
        gateway.settle(exchange)
        return response

    if relay is not None and plan is None:
        chat.byte_relay = relay
    if kept is not None:
        events = replay(kept)
    elif plan is not None and gateway.cache is not None:
        events = _recorded(route.provider.stream(chat), gateway.cache, plan)
    else:
        events = route.provider.stream(chat)
    pending = asyncio.ensure_future(anext(events, None))
    keepalive = gateway.keepalive
    try:
        outcome = await wait_for_work(pending, disconnect, gateway.shutdown, keepalive.first_s if keepalive else None)
        if outcome is Outcome.CLIENT_LEFT or outcome is Outcome.SHUTDOWN:
            await cancel(pending)
        first = pending.result() if outcome is Outcome.DONE else None
    except BaseException:
        disconnect.cancel()
        await events.aclose()
        raise
    if outcome is Outcome.CLIENT_LEFT or outcome is Outcome.SHUTDOWN:
        disconnect.cancel()
        await events.aclose()
        if outcome is Outcome.CLIENT_LEFT:
            return _client_left(exchange, gateway)
        raise shutting_down()
    if outcome is Outcome.WAITING:
        # Still waiting (for the upstream, or a place in the local queue): commit to 200 with a
        # keep-alive now; the first events, or the failure, follow in the stream.
        headers = [(name.encode(), value.encode()) for name, value in _answer_headers(exchange).items()]
        encoder = stream_encoder(route.model, Started())
        body = _stream_body(encoder, events, exchange, gateway, before_close, pending=pending)
        return _event_stream(body, headers, disconnect, encoder, gateway, exchange, waiting=True)
    first = first or []
    started = next((event for event in first if isinstance(event, Started)), Started())
    observe(exchange, first)
    encoder = stream_encoder(route.model, started)
    headers = [(name.encode(), value.encode()) for name, value in _answer_headers(exchange).items()]
    body = _stream_body(encoder, events, exchange, gateway, before_close, first=first)
    return _event_stream(body, headers, disconnect, encoder, gateway, exchange, waiting=False)


async def serve_whole(
    request: Request,
    exchange: Exchange,
    gateway: Gateway,
    work: Awaitable[T],
    answer: Callable[[T], Response],
) -> Response:
    """A request answered whole by work other than a chat (embeddings): admitted by the hooks,
    cancelled if the client leaves or the server stops first, settled once. The door has
    filled in the exchange (model, provider, its `request` for admission)."""
    await gateway.admit(exchange)
    disconnect = watch_disconnect(request.receive)
    task = asyncio.ensure_future(work)
    try:
        outcome = await wait_for_work(task, disconnect, gateway.shutdown, None)
    finally:
        disconnect.cancel()
    if outcome is not Outcome.DONE:
        await cancel(task)
        if outcome is Outcome.CLIENT_LEFT:
            return _client_left(exchange, gateway)
        raise shutting_down()
    exchange.ttft_s = exchange.elapsed()
    response = answer(task.result())
    response.headers.update(_answer_headers(exchange))
    gateway.settle(exchange)
    return response


async def _cache_lookup(
    request: Request, exchange: Exchange, gateway: Gateway, route: Route, chat: ChatRequest
) -> tuple[Plan | None, list[Batch] | None]:
    """Whether the request is cached (its plan) and, on a hit, the kept answer's batches."""
    if gateway.cache is None:
        return None, None
    plan = plan_for(getattr(route.config, "cache", None), request.headers.get(HEADER), exchange.door, exchange.key_id, chat)
    if plan is None:
        return None, None
    kept = await gateway.cache.fetch(plan.key)
    exchange.response_headers[HEADER] = "hit" if kept is not None else "miss"
    exchange.cache_hit = kept is not None
    return plan, kept


async def _from_cache(batches: list[Batch]) -> Completion:
    return fold_events([event for batch in batches for event in batch])


async def _recorded(events: AsyncGenerator[Batch, None], cache: ResponseCache, plan: Plan) -> AsyncGenerator[Batch, None]:
    """The provider's stream, passed on as it comes and kept once it ended whole. Its `Started`
    is kept without the deployment and attempts: a replay has neither."""
    kept: list[Batch] = []
    try:
        async for batch in events:
            kept.append([_for_replay(event) for event in batch if type(event) is not Seam])  # a replay has no seam
            yield batch
    finally:
        await events.aclose()
    if complete(kept):
        cache.put(plan.key, kept, plan.ttl_s, size_of(kept))


def _for_replay(event: Event) -> Event:
    if type(event) is Started:
        return Started(upstream_model=event.upstream_model, attempts=0, prompt_tokens=event.prompt_tokens)
    return event


def _event_stream(
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


def _client_left(exchange: Exchange, gateway: Gateway) -> Response:
    exchange.client_gone = True
    exchange.status = 499
    gateway.settle(exchange)
    return Response(status_code=499)  # nobody is waiting; the work was cancelled


def _read_on_for_the_bill(work: asyncio.Future[Completion], exchange: Exchange, gateway: Gateway) -> Response:
    """The client left a whole answer of an upstream, which bills it all the same: the answer
    is read to its end (bounded by the model's timeouts, or ended at the shutdown deadline) in
    the background, and the exchange is settled with its usage, still as `client_gone`."""
    exchange.client_gone = True
    exchange.status = 499
    exchange.total_s = exchange.elapsed()
    gateway.run_in_background(_bill_when_answered(work, exchange, gateway))
    return Response(status_code=499)


async def _bill_when_answered(work: asyncio.Future[Completion], exchange: Exchange, gateway: Gateway) -> None:
    stop = gateway.shutdown.watch()
    try:
        await asyncio.wait((work, stop), return_when=asyncio.FIRST_COMPLETED)
    finally:
        gateway.shutdown.unwatch(stop)
        if not work.done():
            await cancel(work)
        if work.done() and not work.cancelled():
            failure = work.exception()
            if failure is None:
                _observe_completion(exchange, work.result())
            elif isinstance(failure, GatewayError) and failure.deployment:
                exchange.deployment, exchange.attempts = failure.deployment, failure.attempts
        gateway.settle(exchange)


def _answer_headers(exchange: Exchange) -> dict[str, str]:
    headers = {"x-request-id": exchange.request_id}
    if exchange.deployment:
        headers["x-sluicegate-deployment"] = exchange.deployment
        headers["x-sluicegate-attempts"] = str(exchange.attempts)
    headers.update(exchange.response_headers)
    return headers


def observe(exchange: Exchange, batch: Batch) -> None:
    """What the hooks need to know of a stream, noted as it passes: the first token's time,
    the text sent (to estimate usage when none comes), the finish reason, the usage."""
    for event in batch:
        kind = type(event)
        if kind is TextDelta or kind is ReasoningDelta or kind is RefusalDelta:
            if exchange.ttft_s is None:
                exchange.ttft_s = exchange.elapsed()
            if exchange.transcript is None:  # else the byte relay keeps the text (`Started.transcript`)
                exchange.output_parts.append(event.text)  # type: ignore[union-attr]
        elif kind is ToolCallDelta:
            if exchange.ttft_s is None:
                exchange.ttft_s = exchange.elapsed()
            if exchange.transcript is None:
                exchange.output_parts.append((event.name or "") + event.arguments)  # type: ignore[union-attr]
        elif kind is Finish:
            if event.choice == 0:  # type: ignore[union-attr]
                exchange.finish_reason = event.reason  # type: ignore[union-attr]
        elif kind is Usage:
            exchange.usage = event  # type: ignore[assignment]
        elif kind is RawText:
            if exchange.ttft_s is None:
                exchange.ttft_s = exchange.elapsed()
        elif kind is Started:
            _note_origin(exchange, event)  # type: ignore[arg-type]
        elif kind is PromptProgress:
            exchange.prompt_progress = (event.done, event.total)  # type: ignore[union-attr]
        elif kind is Seam:
            _note_seam(exchange, event)  # type: ignore[arg-type]


def _note_origin(exchange: Exchange, started: Started) -> None:
    exchange.committed = True
    if started.deployment:
        exchange.deployment = started.deployment
    if started.upstream_model:
        exchange.upstream_model = started.upstream_model
    if started.model:
        exchange.served_by = started.model  # a fallback's entry, when one answered
    exchange.attempts = started.attempts
    if started.prompt_tokens is not None:
        exchange.prompt_tokens_hint = started.prompt_tokens
    if started.transcript is not None:
        exchange.transcript = started.transcript


def _note_seam(exchange: Exchange, seam: Seam) -> None:
    """Another deployment continues the answer (mid-stream fail-over): the record names it,
    and keeps the seam for billing each side at its own price."""
    exchange.seams.append(seam)
    exchange.deployment = seam.to
    if seam.to_model:
        exchange.served_by = seam.to_model
    if seam.to_upstream_model:
        exchange.upstream_model = seam.to_upstream_model


async def _noted(events: AsyncGenerator[Batch, None], exchange: Exchange) -> AsyncIterator[Batch]:
    """The stream's batches, each noted on the exchange as it passes (`observe`)."""
    try:
        async for batch in events:
            observe(exchange, batch)
            yield batch
    finally:
        await events.aclose()


def _observe_completion(exchange: Exchange, completion: Completion) -> None:
    exchange.ttft_s = exchange.elapsed()
    if completion.origin is not None:
        _note_origin(exchange, completion.origin)
    exchange.usage = completion.usage
    if completion.choices:
        exchange.finish_reason = completion.choices[0].finish_reason
    for choice in completion.choices:
        exchange.output_parts.extend(
            part for part in (choice.reasoning, choice.content, choice.refusal) if part
        )
        exchange.output_parts.extend(call.name + call.arguments for call in choice.tool_calls)


async def _stream_body(
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
