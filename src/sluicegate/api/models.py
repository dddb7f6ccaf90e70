"""`GET /v1/models` and `GET /v1/models/{id}`: the models the client's key may use, in OpenAI's
shape, or in Anthropic's when the request is Anthropic's (an `anthropic-version` or `x-api-key`
header: Claude Code and the `anthropic` SDK send both), with Anthropic's paging and errors."""

from __future__ import annotations

import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from sluicegate.api.chat_completions.route import render_openai_error
from sluicegate.api.gemini.route import get_gemini_model, list_gemini_models
from sluicegate.api.json import json_response
from sluicegate.api.messages.errors import anthropic_secret, render_anthropic_error
from sluicegate.api.serving import bearer_secret
from sluicegate.errors import GatewayError, InvalidRequestError, ModelNotFoundError
from sluicegate.gateway import Gateway
from sluicegate.governance.hook import model_allowed
from sluicegate.store.records import KeyRecord

ANTHROPIC_PAGE = 20  # Anthropic's default `limit`
ANTHROPIC_MAX_PAGE = 1000


def is_anthropic(request: Request) -> bool:
    headers = request.headers
    return "anthropic-version" in headers or ("x-api-key" in headers and "authorization" not in headers)


def is_gemini(request: Request) -> bool:
    """Google's SDKs send their key in `x-goog-api-key` (or `?key=`), and ask for the list at
    /v1/models when told api_version v1 (and some versions do regardless)."""
    return "x-goog-api-key" in request.headers or "key" in request.query_params


def _visible(gateway: Gateway, key: KeyRecord, names: list[str]) -> list[str]:
    """The names this key may ask for (its model list matches the name or the entry behind it)."""
    if key.models is None:
        return names
    return [n for n in names if model_allowed(key.models, n, gateway.models.get(n).name)]


def _openai_model(gateway: Gateway, name: str) -> dict[str, Any]:
    provider = gateway.models.get(name)
    entry: dict[str, Any] = {
        "id": name,
        "object": "model",
        "created": gateway.started_at,
        "owned_by": provider.owned_by,
        "mode": gateway.models.mode(name),  # chat | embeddings
    }
    target = gateway.models.alias_target(name)
    if target is not None:
        entry["alias_for"] = target  # so nobody takes an alias for the model it names
    return entry


def _anthropic_model(gateway: Gateway, name: str) -> dict[str, Any]:
    created = datetime.datetime.fromtimestamp(gateway.started_at, datetime.UTC)
    return {
        "type": "model",
        "id": name,
        "display_name": name,
        "created_at": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


async def _key(request: Request, gateway: Gateway, anthropic: bool) -> KeyRecord:
    return await gateway.keys.resolve(anthropic_secret(request) if anthropic else bearer_secret(request))


def _anthropic_page(request: Request, names: list[str]) -> tuple[list[str], bool]:
    """Anthropic's paging: `limit` (1 to 1000), and `after_id` or `before_id` (ids of the list)."""
    query = request.query_params
    raw_limit = query.get("limit", str(ANTHROPIC_PAGE))
    try:
        limit = int(raw_limit)
    except ValueError:
        limit = 0
    if not 1 <= limit <= ANTHROPIC_MAX_PAGE:
        raise InvalidRequestError(f"limit: must be an integer from 1 to {ANTHROPIC_MAX_PAGE}", param="limit")
    after, before = query.get("after_id"), query.get("before_id")
    for param, value in (("after_id", after), ("before_id", before)):
        if value is not None and value not in names:
            raise InvalidRequestError(f"{param}: no model `{value}` in this list", param=param)
    if before is not None:
        end = names.index(before)
        start = max(0, end - limit)
        return names[start:end], start > 0
    start = names.index(after) + 1 if after is not None else 0
    return names[start : start + limit], start + limit < len(names)


def _render(anthropic: bool, error: GatewayError) -> Response:
    return render_anthropic_error(error) if anthropic else render_openai_error(error)


async def list_models(request: Request) -> Response:
    if is_gemini(request):
        return await list_gemini_models(request)
    gateway: Gateway = request.app.state.gateway
    anthropic = is_anthropic(request)
    try:
        key = await _key(request, gateway, anthropic)
        names = _visible(gateway, key, gateway.models.names())
        if not anthropic:
            return json_response({"object": "list", "data": [_openai_model(gateway, n) for n in names]})
        page, more = _anthropic_page(request, names)
    except GatewayError as error:
        return _render(anthropic, error)
    return json_response(
        {
            "data": [_anthropic_model(gateway, n) for n in page],
            "has_more": more,
            "first_id": page[0] if page else None,
            "last_id": page[-1] if page else None,
        }
    )


async def retrieve_model(request: Request) -> Response:
    if is_gemini(request):
        request.path_params["model"] = request.path_params["model_id"]
        return await get_gemini_model(request)
    gateway: Gateway = request.app.state.gateway
    anthropic = is_anthropic(request)
    name = request.path_params["model_id"]
    try:
        key = await _key(request, gateway, anthropic)
        gateway.models.get(name)  # a name no entry serves is a 404 (with a suggestion)
        if not _visible(gateway, key, [name]):
            raise ModelNotFoundError(
                f"The model `{name}` does not exist or you do not have access to it.", param="model"
            )
        body = _anthropic_model(gateway, name) if anthropic else _openai_model(gateway, name)
    except GatewayError as error:
        return _render(anthropic, error)
    return json_response(body)


async def health(request: Request) -> Response:
    """Liveness: 200 while the process serves, with each dependency's last known state (checked
    in the background: no round trip per probe)."""
    gateway = request.app.state.gateway
    return json_response(gateway.dependencies.to_json())


async def ready(request: Request) -> Response:
    """Readiness: 503 (same body) while a dependency is down, for a load balancer to route around."""
    dependencies = request.app.state.gateway.dependencies
    return json_response(dependencies.to_json(), status=200 if dependencies.healthy else 503)
