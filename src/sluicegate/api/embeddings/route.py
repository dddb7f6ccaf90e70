"""`POST /v1/embeddings`: OpenAI's embeddings API, for every model entry that can embed (the
embedded model, OpenAI-compatible and Gemini upstreams), through the same keys, model lists,
budgets, limits, ledger, routing and metrics as the chat doors."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from sluicegate.api.chat_completions.route import render_openai_error
from sluicegate.api.chat_completions.schemas import decode_json
from sluicegate.api.embeddings.response import embeddings_body
from sluicegate.api.embeddings.schemas import parse_embedding_request
from sluicegate.api.embeddings.serving import record, routed
from sluicegate.api.json import json_response
from sluicegate.api.serving import Door, bearer_secret, door_endpoint, serve_whole
from sluicegate.core.embeddings import Embeddings
from sluicegate.core.exchange import Exchange
from sluicegate.gateway import Gateway
from sluicegate.http.body import read_body

EMBEDDINGS_DOOR = Door("embeddings", bearer_secret, render_openai_error)


async def _embeddings(request: Request, exchange: Exchange, gateway: Gateway) -> Response:
    raw = await read_body(request, gateway.settings.server.max_body_bytes)
    embedding = parse_embedding_request(decode_json(raw))
    route_model = gateway.models.resolve(embedding.model).model
    call = routed(exchange, gateway, embedding)

    def answer(result: Embeddings) -> Response:
        record(exchange, result)
        return json_response(embeddings_body(result, route_model, embedding.encoding_format))

    return await serve_whole(request, exchange, gateway, call, answer)


embeddings = door_endpoint(EMBEDDINGS_DOOR, _embeddings)
