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
from sluicegate.api.json import json_response
from sluicegate.api.serving import Door, bearer_secret, door_endpoint, serve_whole
from sluicegate.core.embeddings import Embeddings, input_tokens_estimate
from sluicegate.core.events import Usage
from sluicegate.core.exchange import Exchange
from sluicegate.core.request import ChatRequest
from sluicegate.gateway import Gateway
from sluicegate.http.body import read_body

EMBEDDINGS_DOOR = Door("embeddings", bearer_secret, render_openai_error)


async def _embeddings(request: Request, exchange: Exchange, gateway: Gateway) -> Response:
    raw = await read_body(request, gateway.settings.server.max_body_bytes)
    embedding = parse_embedding_request(decode_json(raw))
    route = gateway.models.resolve(embedding.model)
    embedding.upstream_model = route.upstream_model
    exchange.model = embedding.model
    # what the hooks read of a request: no messages, no completion, the input's size
    admitted = ChatRequest(
        model=embedding.model, messages=[], raw={}, max_tokens=0, upstream_model=route.upstream_model
    )
    exchange.request = admitted
    # admission gives the stand-in the key's model check; routing asks it before each fallback
    embedding.may_use = lambda name: admitted.may_use is None or admitted.may_use(name)
    exchange.prompt_tokens_hint = input_tokens_estimate(embedding)
    exchange.provider = route.provider.kind
    exchange.served_by = route.provider.name
    exchange.upstream_model = embedding.upstream_model or str(getattr(route.provider, "upstream_model", ""))
    embed = route.provider.embed  # type: ignore[attr-defined]  # every model entry's Router has it

    def answer(result: Embeddings) -> Response:
        if result.origin is not None:
            exchange.deployment = result.origin.deployment or exchange.deployment
            exchange.attempts = result.origin.attempts
            exchange.upstream_model = result.origin.upstream_model or exchange.upstream_model
        exchange.usage = Usage(result.prompt_tokens, 0, estimated=result.estimated)
        exchange.finish_reason = "stop"
        return json_response(embeddings_body(result, route.model, embedding.encoding_format))

    return await serve_whole(request, exchange, gateway, embed(embedding), answer)


embeddings = door_endpoint(EMBEDDINGS_DOOR, _embeddings)
