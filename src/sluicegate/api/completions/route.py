"""`POST /v1/completions`: legacy text completions, streamed or whole, through the same serving
path as chat (keys, model lists, budgets, limits, ledger, routing, metrics). The embedded
model continues the prompt as plain text; an OpenAI-compatible upstream gets the request as
sent; other providers have no such API and answer a 400 that says so."""

from __future__ import annotations

import math
import secrets
import time

from starlette.requests import Request
from starlette.responses import Response

from sluicegate.api.chat_completions.route import render_openai_error
from sluicegate.api.chat_completions.schemas import decode_json
from sluicegate.api.completions.encoder import CompletionChunkEncoder, completion_body
from sluicegate.api.completions.schemas import parse_completion_request
from sluicegate.api.json import json_response
from sluicegate.api.serving import Door, bearer_secret, door_endpoint, serve_chat
from sluicegate.core.completion import Completion
from sluicegate.core.events import Started
from sluicegate.core.exchange import Exchange
from sluicegate.errors import InvalidRequestError
from sluicegate.gateway import Gateway
from sluicegate.http.body import read_body
from sluicegate.http.event_stream import EventStreamResponse

COMPLETIONS_DOOR = Door("completions", bearer_secret, render_openai_error)
SERVED_BY = ("local", "openai")  # the provider kinds that have text completions


def _check_served(gateway: Gateway, model: str) -> None:
    provider = gateway.models.get(model)
    deployments = getattr(provider, "deployments", None)
    kinds = {d.provider.kind for d in deployments} if deployments else {provider.kind}
    other = sorted(kinds - set(SERVED_BY))
    if other:
        raise InvalidRequestError(
            f"The model `{model}` is served by the `{other[0]}` provider, which has no legacy completions API:"
            " use /v1/chat/completions.",
            param="model",
            code="completions_not_supported",
        )


async def _completions(request: Request, exchange: Exchange, gateway: Gateway) -> Response | EventStreamResponse:
    raw = await read_body(request, gateway.settings.server.max_body_bytes)
    chat = parse_completion_request(decode_json(raw))
    _check_served(gateway, chat.model)
    # the prompts' size for admission (limits, the budget's hold): the messages are empty
    exchange.prompt_tokens_hint = sum(math.ceil(len(prompt) / 4) + 1 for prompt in chat.prompts or ())
    completion_id = "cmpl-" + secrets.token_urlsafe(18)
    created = int(time.time())

    def stream_encoder(model: str, started: Started) -> CompletionChunkEncoder:
        return CompletionChunkEncoder(completion_id, created, model, chat.include_usage, chat.logprobs)

    def whole(completion: Completion, model: str) -> Response:
        return json_response(completion_body(completion, completion_id, created, model))

    return await serve_chat(request, exchange, gateway, chat, stream_encoder, whole)


completions = door_endpoint(COMPLETIONS_DOOR, _completions)
