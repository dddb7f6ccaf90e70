"""Serving a chat through any door: route, admit, then answer whole or as a stream.

Everything that can fail is tried before the first byte (auth, body, model, admission, the
provider's first event), so those failures are ordinary HTTP errors in the door's shape. Once
the first byte is out, a failure becomes the door's error event and its stream terminator.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TypeVar

from starlette.requests import Request
from starlette.responses import Response

from sluicegate.api.serving.cached import cache_lookup, from_cache, recorded
from sluicegate.api.serving.leaving import client_left, read_on_for_the_bill
from sluicegate.api.serving.observe import noted, observe, observe_completion
from sluicegate.api.serving.stream_body import StreamEncoder, event_stream, stream_body
from sluicegate.core.cache import replay, size_of
from sluicegate.core.completion import Completion, collect, completion_events
from sluicegate.core.events import (
    Started,
)
from sluicegate.core.exchange import Exchange
from sluicegate.core.request import ChatRequest, WireFormat
from sluicegate.gateway import Gateway
from sluicegate.http.event_stream import EventStreamResponse, watch_disconnect
from sluicegate.http.shutdown import shutting_down
from sluicegate.http.waiting import Outcome, cancel, wait_for_work
from sluicegate.wiring.registry import Route

T = TypeVar("T")


def routed(
    gateway: Gateway, exchange: Exchange, chat: ChatRequest, stream: bool | None = None
) -> tuple[Route, ChatRequest]:
    """Route the request and note on the exchange what will answer it (the entry, its provider,
    the upstream model). `stream=True`: generated as a stream whatever the client reads
    (resumable and background answers)."""
    route = gateway.route(chat)
    chat = route.request(chat)
    if stream is not None and chat.stream != stream:
        chat = replace(chat, stream=stream)
    exchange.model = chat.model
    exchange.request = chat
    exchange.provider = route.provider.kind
    exchange.served_by = route.provider.name
    exchange.upstream_model = chat.upstream_model or str(getattr(route.provider, "upstream_model", ""))
    exchange.stream = chat.stream
    return route, chat


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
    route, chat = routed(gateway, exchange, chat)
    plan, kept = await cache_lookup(request, exchange, gateway, route, chat)
    await gateway.admit(exchange)
    chat.key_id = exchange.key_id
    disconnect = watch_disconnect(request.receive)
    if not chat.stream:
        # The embedded model's answer is folded here from its stream, noted as it comes, so
        # what it generated is known if the client leaves and the model is stopped.
        local = kept is None and route.provider.kind == "local"
        if kept is not None:
            answer = from_cache(kept)
        elif local:
            answer = collect(noted(route.provider.stream(chat), exchange))
        else:
            answer = route.provider.complete(chat)
        work = asyncio.ensure_future(answer)
        try:
            outcome = await wait_for_work(work, disconnect, gateway.shutdown, None)
        finally:
            disconnect.cancel()
        if outcome is Outcome.CLIENT_LEFT and not local:
            return read_on_for_the_bill(work, exchange, gateway)
        if outcome is not Outcome.DONE:
            await cancel(work)
            if outcome is Outcome.CLIENT_LEFT:
                return client_left(exchange, gateway)  # billed what the model generated until it stopped
            raise shutting_down()
        completion = work.result()
        if plan is not None and kept is None and gateway.cache is not None:
            batches = [completion_events(completion)]
            gateway.cache.put(plan.key, batches, plan.ttl_s, size_of(batches))
        if local:
            exchange.ttft_s = exchange.elapsed()  # a whole answer's first content is all of it
        else:
            observe_completion(exchange, completion)
        response = whole(completion, route.model)
        response.headers.update(answer_headers(exchange))
        gateway.settle(exchange)
        return response

    if relay is not None and plan is None:
        chat.byte_relay = relay
    if kept is not None:
        events = replay(kept)
    elif plan is not None and gateway.cache is not None:
        events = recorded(route.provider.stream(chat), gateway.cache, plan)
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
            return client_left(exchange, gateway)
        raise shutting_down()
    if outcome is Outcome.WAITING:
        # Still waiting (for the upstream, or a place in the local queue): commit to 200 with a
        # keep-alive now; the first events, or the failure, follow in the stream.
        headers = [(name.encode(), value.encode()) for name, value in answer_headers(exchange).items()]
        encoder = stream_encoder(route.model, Started())
        body = stream_body(encoder, events, exchange, gateway, before_close, pending=pending)
        return event_stream(body, headers, disconnect, encoder, gateway, exchange, waiting=True)
    first = first or []
    started = next((event for event in first if isinstance(event, Started)), Started())
    observe(exchange, first)
    encoder = stream_encoder(route.model, started)
    headers = [(name.encode(), value.encode()) for name, value in answer_headers(exchange).items()]
    body = stream_body(encoder, events, exchange, gateway, before_close, first=first)
    return event_stream(body, headers, disconnect, encoder, gateway, exchange, waiting=False)


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
            return client_left(exchange, gateway)
        raise shutting_down()
    exchange.ttft_s = exchange.elapsed()
    response = answer(task.result())
    response.headers.update(answer_headers(exchange))
    gateway.settle(exchange)
    return response


def answer_headers(exchange: Exchange) -> dict[str, str]:
    headers = {"x-request-id": exchange.request_id}
    if exchange.deployment:
        headers["x-sluicegate-deployment"] = exchange.deployment
        headers["x-sluicegate-attempts"] = str(exchange.attempts)
    headers.update(exchange.response_headers)
    return headers
