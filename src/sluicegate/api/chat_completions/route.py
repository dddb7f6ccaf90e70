"""`POST /v1/chat/completions`: the OpenAI front door.

Everything that can fail is tried before the first byte (auth, body, model, the provider's
first event), so those failures are ordinary JSON errors with their HTTP status. Once the
first byte is out, a failure becomes a `data: {"error": ...}` event and `data: [DONE]`.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable
from typing import TypeVar

from starlette.requests import Request
from starlette.responses import Response

from sluicegate.api.chat_completions.chunks import ChunkEncoder
from sluicegate.api.chat_completions.response import completion_body
from sluicegate.api.chat_completions.schemas import decode_json, parse_chat_request
from sluicegate.api.json import json_response
from sluicegate.core.events import Batch
from sluicegate.core.gateway import Gateway
from sluicegate.errors import GatewayError
from sluicegate.http.body import read_body
from sluicegate.http.event_stream import EventStreamResponse, watch_disconnect
from sluicegate.http.sse import DONE, encode_data

log = logging.getLogger("sluicegate.chat")
T = TypeVar("T")


def new_completion_id() -> str:
    return "chatcmpl-" + secrets.token_urlsafe(18)


async def chat_completions(request: Request) -> Response | EventStreamResponse:
    gateway: Gateway = request.app.state.gateway
    gateway.keys.authenticate(request.headers.get("authorization"))
    raw = await read_body(request, gateway.settings.server.max_body_bytes)
    chat = parse_chat_request(decode_json(raw))
    provider = gateway.models.get(chat.model)
    completion_id = new_completion_id()
    created = int(time.time())
    disconnect = watch_disconnect(request.receive)
    if not chat.stream:
        try:
            completion = await _unless_client_leaves(provider.complete(chat), disconnect)
        finally:
            disconnect.cancel()
        if completion is None:
            return Response(status_code=499)  # nobody is waiting; the work was cancelled
        return json_response(completion_body(completion, completion_id, created, provider.name))

    events = provider.stream(chat)
    try:
        first = await _unless_client_leaves(anext(events, None), disconnect)
    except BaseException:
        disconnect.cancel()
        await events.aclose()
        raise
    if disconnect.done():
        await events.aclose()
        return Response(status_code=499)  # the client left before the answer began
    encoder = ChunkEncoder(completion_id, created, provider.name, chat.include_usage)
    return EventStreamResponse(_sse_body(encoder, first, events), disconnect=disconnect)


async def _unless_client_leaves(work: Awaitable[T], disconnect: asyncio.Future[None]) -> T | None:
    """The work's result (or its exception), or None if the client goes away first: then the
    work is cancelled, so a client that gave up (a timeout, a closed tab) does not keep a model
    generating for nobody."""
    task = asyncio.ensure_future(work)
    await asyncio.wait((task, disconnect), return_when=asyncio.FIRST_COMPLETED)
    if not task.done():
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return None
    return task.result()


async def _sse_body(
    encoder: ChunkEncoder, first: Batch | None, events: AsyncGenerator[Batch, None]
) -> AsyncIterator[bytes]:
    try:
        yield encoder.start(0) + encoder.encode_batch(first or [])
        async for batch in events:
            data = encoder.encode_batch(batch)
            if data:
                yield data
        usage = encoder.usage_chunk()
        if usage:
            yield usage
    except GatewayError as exc:
        log.warning("stream failed after the first byte: %s", exc.message)
        yield encode_data(exc.to_json())
    except Exception as exc:
        log.exception("stream failed after the first byte")
        yield encode_data(GatewayError(f"The gateway failed mid-stream: {type(exc).__name__}").to_json())
    finally:
        await events.aclose()
    yield DONE
