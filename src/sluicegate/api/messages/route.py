"""`POST /v1/messages` and `POST /v1/messages/count_tokens`: the Anthropic front door.

Auth, routing, the hooks, the first-byte boundary and the client leaving are the shared
serving path's (`api/serving/`), the same code that serves `/v1/chat/completions`; this door
brings only Anthropic's wire format: `x-api-key`, its error shape, its request, its stream.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from sluicegate.api.json import json_response
from sluicegate.api.limits import parse_off_loop
from sluicegate.api.messages.count import estimate_input_tokens
from sluicegate.api.messages.errors import anthropic_secret, render_anthropic_error
from sluicegate.api.messages.response import message_body, new_id
from sluicegate.api.messages.schemas import decode_json
from sluicegate.api.messages.stream import MessageStreamEncoder
from sluicegate.api.messages.translate import parse_count_request, parse_messages_request
from sluicegate.api.resumable import resume, serve_resumable, wants_resumable
from sluicegate.api.serving import Door, door_endpoint, routed, serve_chat
from sluicegate.core.completion import Completion
from sluicegate.core.events import Started
from sluicegate.core.exchange import Exchange
from sluicegate.core.request import ChatRequest
from sluicegate.gateway import Gateway
from sluicegate.http.body import read_body
from sluicegate.http.event_stream import EventStreamResponse

ANTHROPIC_DOOR = Door("messages", anthropic_secret, render_anthropic_error)
TOKEN_COUNT_HEADER = "x-sluicegate-token-count"  # "exact" or "estimate"


async def _messages(request: Request, exchange: Exchange, gateway: Gateway) -> Response | EventStreamResponse:
    exchange.response_headers["request-id"] = exchange.request_id  # where Anthropic's SDKs look
    raw = await read_body(request, gateway.settings.server.max_body_bytes)
    chat = await parse_off_loop(raw, lambda raw: parse_messages_request(decode_json(raw)))
    beta = request.headers.get("anthropic-beta")
    if beta:
        chat.forward_headers["anthropic-beta"] = beta  # beta features reach an Anthropic upstream
    message_id = new_id("msg_")

    def stream_encoder(model: str, started: Started) -> MessageStreamEncoder:
        return MessageStreamEncoder(message_id, model)

    def whole(completion: Completion, model: str) -> Response:
        return json_response(message_body(completion, message_id, model))

    if chat.stream and wants_resumable(request, chat, gateway):
        route, chat = routed(gateway, exchange, chat, stream=True)
        return await serve_resumable(gateway, exchange, route, chat, message_id, stream_encoder)
    return await serve_chat(request, exchange, gateway, chat, stream_encoder, whole, relay="anthropic_messages")


async def _count_tokens(request: Request, exchange: Exchange, gateway: Gateway) -> Response:
    """Exact where the provider can count (the embedded model's tokenizer, an Anthropic
    upstream's own endpoint), else the estimate of `count.py`; the header says which."""
    exchange.response_headers["request-id"] = exchange.request_id
    raw = await read_body(request, gateway.settings.server.max_body_bytes)
    body, chat = await parse_off_loop(raw, _count_request)
    route = gateway.route(chat)
    exact = await route.provider.count_tokens(route.request(chat))
    headers = {**exchange.response_headers, TOKEN_COUNT_HEADER: "exact" if exact is not None else "estimate"}
    count = exact if exact is not None else estimate_input_tokens(body)
    return json_response({"input_tokens": count}, headers=headers)


def _count_request(raw: bytes) -> tuple[Any, ChatRequest]:
    body = decode_json(raw)
    return body, parse_count_request(body)


async def _resume(request: Request, exchange: Exchange, gateway: Gateway) -> EventStreamResponse:
    return await resume(request, exchange, gateway, MessageStreamEncoder("", ""))


messages = door_endpoint(ANTHROPIC_DOOR, _messages)
resume_message = door_endpoint(ANTHROPIC_DOOR, _resume)
count_tokens = door_endpoint(ANTHROPIC_DOOR, _count_tokens)
