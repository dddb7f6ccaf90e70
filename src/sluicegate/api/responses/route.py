"""`/v1/responses`: the OpenAI Responses front door, on the same serving path as every door.

`POST` answers whole or as a stream; with `store` (OpenAI's default) the response is kept,
under the key that made it, before its last event is sent, so `previous_response_id`, `GET`,
`DELETE` and `input_items` find it as soon as the client has read the end.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from sluicegate.api.chat_completions.route import render_openai_error
from sluicegate.api.chat_completions.schemas import decode_json
from sluicegate.api.json import json_response
from sluicegate.api.limits import parse_off_loop
from sluicegate.api.responses.encoder import ResponseEncoder
from sluicegate.api.responses.items import new_id
from sluicegate.api.responses.request import ResponsesRequest, parse_responses_request
from sluicegate.api.responses.resource import response_object
from sluicegate.api.serving import Door, bearer_secret, door_endpoint, serve_chat
from sluicegate.core.completion import Completion, completion_events
from sluicegate.core.events import Started
from sluicegate.core.exchange import Exchange
from sluicegate.errors import InvalidRequestError, NotFoundError
from sluicegate.gateway import Gateway
from sluicegate.http.body import read_body
from sluicegate.http.event_stream import EventStreamResponse
from sluicegate.store.responses import StoredResponse

log = logging.getLogger("sluicegate.responses")
RESPONSES_DOOR = Door("responses", bearer_secret, render_openai_error)
OMITTED_TOOLS_HEADER = "x-sluicegate-omitted-tools"  # the hosted tools left out of the request


async def _create(request: Request, exchange: Exchange, gateway: Gateway) -> Response | EventStreamResponse:
    raw = await read_body(request, gateway.settings.server.max_body_bytes)
    parsed = await parse_off_loop(raw, lambda raw: parse_responses_request(decode_json(raw)))
    _hosted_tools(gateway, exchange, parsed)
    history = await _history(gateway, parsed, _key(exchange))
    chat = parsed.chat_request(history)
    response_id = new_id("resp_")
    created_at = int(time.time())
    made: list[ResponseEncoder] = []

    def stream_encoder(model: str, started: Started) -> ResponseEncoder:
        made.append(ResponseEncoder(response_object(parsed, response_id, created_at, model), namespaced=parsed.namespaced))
        return made[-1]

    def whole(completion: Completion, model: str) -> Response:
        encoder = ResponseEncoder(
            response_object(parsed, response_id, created_at, model), quiet=True, namespaced=parsed.namespaced
        )
        encoder.encode_batch(completion_events(completion))
        encoder.close()
        made.append(encoder)
        return json_response(encoder.resource)

    async def keep() -> None:
        if parsed.store and made:
            await _keep(gateway, exchange, parsed, made[-1].resource)

    response = await serve_chat(request, exchange, gateway, chat, stream_encoder, whole, keep)
    if not chat.stream and made:
        await keep()
    return response


def _hosted_tools(gateway: Gateway, exchange: Exchange, parsed: ResponsesRequest) -> None:
    """OpenAI's hosted tools run on OpenAI's servers, never behind the gateway: left out of
    the request (the header and a log line name them), or refused if the model entry says so."""
    if not parsed.hosted_tools:
        return
    entry = gateway.models.resolve(parsed.model).config
    if getattr(entry, "hosted_tools", "omit") == "refuse":
        param, kind = parsed.hosted_tools[0]
        raise InvalidRequestError(
            f"The tool type '{kind}' is a tool OpenAI runs on its own servers, which the model"
            f" `{parsed.model}` cannot run. Remove it from 'tools'.",
            param=param,
            code="unsupported_parameter",
        )
    omitted = ",".join(dict.fromkeys(kind for _, kind in parsed.hosted_tools))
    exchange.response_headers[OMITTED_TOOLS_HEADER] = omitted
    log.info("request %s: hosted tools left out for model %s: %s", exchange.request_id, parsed.model, omitted)


async def _history(gateway: Gateway, parsed: ResponsesRequest, key_id: str) -> list[dict[str, Any]]:
    """The stored conversation a `previous_response_id` continues: each response's input
    items, then its output items, oldest first."""
    if parsed.previous_response_id is None:
        return []
    chain = await gateway.responses.chain(parsed.previous_response_id, key_id)
    if not chain:
        raise InvalidRequestError(
            f"Previous response with id '{parsed.previous_response_id}' not found.",
            param="previous_response_id",
            code="previous_response_not_found",
        )
    items: list[dict[str, Any]] = []
    for record in chain:
        items += record.input_items
        items += record.response.get("output") or []
    return items


async def _keep(gateway: Gateway, exchange: Exchange, parsed: ResponsesRequest, body: dict[str, Any]) -> None:
    record = StoredResponse(
        id=body["id"],
        key_id=_key(exchange),
        created_at=float(body["created_at"]),
        previous_response_id=parsed.previous_response_id,
        input_items=parsed.input_items,
        response=body,
    )
    try:
        await gateway.responses.put(record)
    except Exception:  # the answer stands; only its later retrieval is lost
        log.exception("request %s: storing response %s failed", exchange.request_id, record.id)


def _key(exchange: Exchange) -> str:
    assert exchange.key_id is not None  # door_endpoint authenticated the request
    return exchange.key_id


async def _stored(request: Request, exchange: Exchange, gateway: Gateway) -> StoredResponse:
    response_id = request.path_params["response_id"]
    record = await gateway.responses.get(response_id, _key(exchange))
    if record is None:
        raise NotFoundError(f"Response with id '{response_id}' not found.", param="response_id", code=None)
    return record


async def _retrieve(request: Request, exchange: Exchange, gateway: Gateway) -> Response:
    if request.query_params.get("stream", "").lower() == "true":
        raise InvalidRequestError(
            "Streaming a stored response again is not supported (sluicegate has no background mode).",
            param="stream",
            code="unsupported_parameter",
        )
    return json_response((await _stored(request, exchange, gateway)).response)


async def _delete(request: Request, exchange: Exchange, gateway: Gateway) -> Response:
    response_id = request.path_params["response_id"]
    if not await gateway.responses.delete(response_id, _key(exchange)):
        raise NotFoundError(f"Response with id '{response_id}' not found.", param="response_id", code=None)
    return json_response({"id": response_id, "object": "response.deleted", "deleted": True})


async def _input_items(request: Request, exchange: Exchange, gateway: Gateway) -> Response:
    """A page of the response's own input items, newest first unless `order=asc`."""
    record = await _stored(request, exchange, gateway)
    query = request.query_params
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise InvalidRequestError(
            f"Invalid value for 'order': '{order}'. Supported values are: 'asc', 'desc'.",
            param="order",
            code="invalid_value",
        )
    limit_text = query.get("limit", "20")
    if not limit_text.isdigit() or not 1 <= int(limit_text) <= 100:
        raise InvalidRequestError(
            "Invalid value for 'limit': expected an integer between 1 and 100.",
            param="limit",
            code="invalid_value",
        )
    items = record.input_items if order == "asc" else record.input_items[::-1]
    after = query.get("after")
    if after is not None:
        ids = [item.get("id") for item in items]
        items = items[ids.index(after) + 1 :] if after in ids else []
    page = items[: int(limit_text)]
    return json_response(
        {
            "object": "list",
            "data": page,
            "first_id": page[0].get("id") if page else None,
            "last_id": page[-1].get("id") if page else None,
            "has_more": len(items) > len(page),
        }
    )


create_response = door_endpoint(RESPONSES_DOOR, _create)
retrieve_response = door_endpoint(RESPONSES_DOOR, _retrieve)
delete_response = door_endpoint(RESPONSES_DOOR, _delete)
list_input_items = door_endpoint(RESPONSES_DOOR, _input_items)
