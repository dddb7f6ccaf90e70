"""`/v1beta/models/{model}:{method}`: Gemini's own API as a front door, for every model.

`generateContent`, `streamGenerateContent` (SSE with `?alt=sse`, else a streamed JSON array),
`countTokens`, `embedContent`, `batchEmbedContents`, and `GET /v1beta/models[/{model}]`, with
the key in `x-goog-api-key` or `?key=`. Auth, routing, the hooks and the stream's first-byte
boundary are the shared serving path's (`api/serving/`); this door brings Gemini's wire.
"""

from __future__ import annotations

import base64
import dataclasses
import struct
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from sluicegate.api.chat_completions.schemas import decode_json
from sluicegate.api.embeddings.serving import record, routed
from sluicegate.api.gemini.errors import gemini_secret, render_gemini_error
from sluicegate.api.gemini.response import GeminiStreamEncoder, new_response_id, whole_body
from sluicegate.api.gemini.translate import parse_generate_request
from sluicegate.api.json import json_response
from sluicegate.api.limits import parse_off_loop
from sluicegate.api.messages.count import estimate_input_tokens
from sluicegate.api.serving import Door, door_endpoint, serve_chat, serve_whole
from sluicegate.core.completion import Completion
from sluicegate.core.embeddings import EmbeddingRequest, Embeddings
from sluicegate.core.events import Started
from sluicegate.core.exchange import Exchange
from sluicegate.core.request import ChatRequest
from sluicegate.errors import GatewayError, InvalidRequestError, ModelNotFoundError, NotFoundError
from sluicegate.gateway import Gateway
from sluicegate.governance.hook import model_allowed
from sluicegate.http.body import read_body
from sluicegate.http.event_stream import EventStreamResponse
from sluicegate.providers.gemini.errors import PromptBlockedError

GEMINI_DOOR = Door("gemini", gemini_secret, render_gemini_error)
TOKEN_COUNT_HEADER = "x-sluicegate-token-count"  # "exact" or "estimate"
_CHAT_METHODS = ("generateContent", "streamGenerateContent")


def _model_and_method(request: Request) -> tuple[str, str]:
    target: str = request.path_params["target"]
    name, colon, method = target.rpartition(":")
    if not colon or not name:
        raise NotFoundError(f"No method in '{target}': POST models/{{model}}:generateContent and the like.")
    return name.removeprefix("models/"), method


async def _gemini(request: Request, exchange: Exchange, gateway: Gateway) -> Response | EventStreamResponse:
    model, method = _model_and_method(request)
    if method in _CHAT_METHODS:
        return await _generate(request, exchange, gateway, model, method == "streamGenerateContent")
    if method == "countTokens":
        return await _count_tokens(request, exchange, gateway, model)
    if method in ("embedContent", "batchEmbedContents"):
        return await _embed(request, exchange, gateway, model, method == "batchEmbedContents")
    raise NotFoundError(f"The method '{method}' is not served here.")


async def _generate(
    request: Request, exchange: Exchange, gateway: Gateway, model: str, stream: bool
) -> Response | EventStreamResponse:
    raw = await read_body(request, gateway.settings.server.max_body_bytes)
    chat = await parse_off_loop(raw, lambda raw: parse_generate_request(decode_json(raw), model, stream))
    response_id = new_response_id()
    sse = request.query_params.get("alt") == "sse"

    def stream_encoder(name: str, started: Started) -> GeminiStreamEncoder:
        return GeminiStreamEncoder(name, response_id, sse)

    def whole(completion: Completion, name: str) -> Response:
        return json_response(whole_body(completion, name, response_id))

    try:
        response = await serve_chat(request, exchange, gateway, chat, stream_encoder, whole)
    except PromptBlockedError as blocked:
        return _blocked(blocked, exchange, gateway, model, response_id, stream, sse)
    if isinstance(response, EventStreamResponse) and not sse:
        # a JSON array, not events: its content type, and whitespace (no SSE comments) to keep alive
        response.headers = [
            (b"content-type", b"application/json; charset=utf-8")
            if name == b"content-type"
            else (name, value)
            for name, value in response.headers
        ]
        if response.keepalive is not None:
            response.keepalive = dataclasses.replace(response.keepalive, data=b"\n", note=None)
    return response


def _blocked(
    blocked: PromptBlockedError,
    exchange: Exchange,
    gateway: Gateway,
    model: str,
    response_id: str,
    stream: bool,
    sse: bool,
) -> Response:
    """A prompt a Gemini upstream blocked, answered as Gemini answers it: a 200 whose only
    content is the `promptFeedback` (block reason, safety ratings) as the upstream sent it. The
    exchange is recorded as the refusal it is (400, content_filter), as other doors answer it."""
    exchange.failed(blocked.http_status, blocked.error_type, blocked.code, blocked.message)
    if blocked.deployment:
        exchange.deployment, exchange.attempts = blocked.deployment, blocked.attempts
    gateway.settle(exchange)
    body = {"promptFeedback": blocked.feedback, "modelVersion": model, "responseId": response_id}
    data = orjson.dumps(body)
    headers = {**exchange.response_headers, "x-request-id": exchange.request_id}
    if stream and sse:
        return Response(b"data: " + data + b"\r\n\r\n", media_type="text/event-stream", headers=headers)
    return Response(b"[" + data + b"]" if stream else data, media_type="application/json", headers=headers)


async def _count_tokens(request: Request, exchange: Exchange, gateway: Gateway, model: str) -> Response:
    """Exact where the provider can count (the embedded model, a Gemini upstream), else an
    estimate; the header says which."""
    raw = await read_body(request, gateway.settings.server.max_body_bytes)
    body, chat = await parse_off_loop(raw, lambda raw: _count_request(raw, model))
    route = gateway.route(chat)
    exact = await route.provider.count_tokens(chat)
    headers = {**exchange.response_headers, TOKEN_COUNT_HEADER: "exact" if exact is not None else "estimate"}
    estimate = {
        "system": body.get("systemInstruction"),
        "messages": chat.messages,
        "tools": body.get("tools"),
    }
    count = exact if exact is not None else estimate_input_tokens(estimate)
    return json_response({"totalTokens": count}, headers=headers)


def _count_request(raw: bytes, model: str) -> tuple[dict[str, Any], ChatRequest]:
    body = decode_json(raw)
    if isinstance(body, dict) and isinstance(body.get("generateContentRequest"), dict):
        body = {k: v for k, v in body["generateContentRequest"].items() if k != "model"}
    chat = parse_generate_request(body, model, stream=False)
    return chat.raw, chat


def _embed_texts(item: Any, where: str) -> str:
    content = item.get("content") if isinstance(item, dict) else None
    parts = content.get("parts") if isinstance(content, dict) else None
    if not isinstance(parts, list):
        raise InvalidRequestError(f"'{where}content.parts' is required.", param=f"{where}content")
    return "".join(
        part.get("text", "") for part in parts if isinstance(part, dict) and isinstance(part.get("text"), str)
    )


async def _embed(request: Request, exchange: Exchange, gateway: Gateway, model: str, batch: bool) -> Response:
    raw = await read_body(request, gateway.settings.server.max_body_bytes)
    body = decode_json(raw)
    if not isinstance(body, dict):
        raise InvalidRequestError("The request body must be a JSON object.")
    items = body.get("requests") if batch else [body]
    if not isinstance(items, list) or not items:
        raise InvalidRequestError("'requests' must be a non-empty list.", param="requests")
    texts = [_embed_texts(item, f"requests[{i}]." if batch else "") for i, item in enumerate(items)]
    dimensions = items[0].get("outputDimensionality") if isinstance(items[0], dict) else None
    if dimensions is not None and (not isinstance(dimensions, int) or dimensions < 1):
        raise InvalidRequestError(
            "'outputDimensionality' must be a positive integer.", param="outputDimensionality"
        )
    openai_body: dict[str, Any] = {"model": model, "input": texts, "encoding_format": "float"}
    if dimensions is not None:
        openai_body["dimensions"] = dimensions
    embedding = EmbeddingRequest(model=model, inputs=texts, raw=openai_body, dimensions=dimensions)
    call = routed(exchange, gateway, embedding)

    def answer(result: Embeddings) -> Response:
        record(exchange, result)
        vectors = [{"values": vector} for vector in _vectors(result)]
        return json_response({"embeddings": vectors} if batch else {"embedding": vectors[0]})

    return await serve_whole(request, exchange, gateway, call, answer)


def _vectors(result: Embeddings) -> list[list[float]]:
    if result.body is None:
        return result.vectors
    data = sorted(result.body.get("data") or [], key=lambda item: item.get("index", 0))
    return [_floats(item.get("embedding")) for item in data]


def _floats(value: Any) -> list[float]:
    if isinstance(value, str):  # an upstream that answered base64 all the same
        packed = base64.b64decode(value)
        return list(struct.unpack(f"<{len(packed) // 4}f", packed))
    return list(value) if isinstance(value, list) else []


def _model_entry(gateway: Gateway, name: str) -> dict[str, Any]:
    embeds = gateway.models.mode(name) == "embeddings"
    methods = (
        ["embedContent", "batchEmbedContents"]
        if embeds
        else ["generateContent", "streamGenerateContent", "countTokens"]
    )
    return {"name": f"models/{name}", "displayName": name, "supportedGenerationMethods": methods}


def _visible(gateway: Gateway, models: tuple[str, ...] | None, names: list[str]) -> list[str]:
    if models is None:
        return names
    return [n for n in names if model_allowed(models, n, gateway.models.get(n).name)]


async def list_gemini_models(request: Request) -> Response:
    gateway: Gateway = request.app.state.gateway
    try:
        key = await gateway.keys.resolve(gemini_secret(request))
        names = _visible(gateway, key.models, gateway.models.names())
    except GatewayError as error:
        return render_gemini_error(error)
    return json_response({"models": [_model_entry(gateway, n) for n in names]})


async def get_gemini_model(request: Request) -> Response:
    gateway: Gateway = request.app.state.gateway
    name = str(request.path_params["model"]).removeprefix("models/")
    try:
        key = await gateway.keys.resolve(gemini_secret(request))
        gateway.models.get(name)
        if not _visible(gateway, key.models, [name]):
            raise ModelNotFoundError(f"The model `{name}` does not exist or you do not have access to it.")
    except GatewayError as error:
        return render_gemini_error(error)
    return json_response(_model_entry(gateway, name))


gemini = door_endpoint(GEMINI_DOOR, _gemini)
