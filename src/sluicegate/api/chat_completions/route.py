"""`POST /v1/chat/completions`: the OpenAI front door."""

from __future__ import annotations

import secrets
import time

from starlette.requests import Request
from starlette.responses import Response

from sluicegate.api.chat_completions.chunks import ChunkEncoder
from sluicegate.api.chat_completions.response import completion_body
from sluicegate.api.chat_completions.schemas import decode_json, parse_chat_request
from sluicegate.api.json import json_response
from sluicegate.api.limits import parse_off_loop
from sluicegate.api.resumable import resume, serve_resumable, wants_resumable
from sluicegate.api.serving import Door, bearer_secret, door_endpoint, routed, serve_chat
from sluicegate.core.completion import Completion
from sluicegate.core.events import Started
from sluicegate.core.exchange import Exchange
from sluicegate.errors import GatewayError
from sluicegate.gateway import Gateway
from sluicegate.http.body import read_body
from sluicegate.http.event_stream import EventStreamResponse


def new_completion_id() -> str:
    return "chatcmpl-" + secrets.token_urlsafe(18)


def render_openai_error(error: GatewayError) -> Response:
    return json_response(error.to_dict(), status=error.http_status, headers=error.headers())


OPENAI_DOOR = Door("chat_completions", bearer_secret, render_openai_error)


async def _chat_completions(
    request: Request, exchange: Exchange, gateway: Gateway
) -> Response | EventStreamResponse:
    raw = await read_body(request, gateway.settings.server.max_body_bytes)
    chat = await parse_off_loop(raw, lambda raw: parse_chat_request(decode_json(raw)))
    completion_id = new_completion_id()
    created = int(time.time())

    def stream_encoder(model: str, started: Started) -> ChunkEncoder:
        return ChunkEncoder(completion_id, created, model, chat.include_usage)

    def whole(completion: Completion, model: str) -> Response:
        return json_response(completion_body(completion, completion_id, created, model))

    if chat.stream and wants_resumable(request, chat, gateway):
        route, chat = routed(gateway, exchange, chat, stream=True)
        return await serve_resumable(gateway, exchange, route, chat, completion_id, stream_encoder)
    return await serve_chat(request, exchange, gateway, chat, stream_encoder, whole, relay="openai_chat")


async def _resume(request: Request, exchange: Exchange, gateway: Gateway) -> EventStreamResponse:
    return await resume(request, exchange, gateway, ChunkEncoder("", 0, "", False))


chat_completions = door_endpoint(OPENAI_DOOR, _chat_completions)
resume_chat_completion = door_endpoint(OPENAI_DOOR, _resume)
