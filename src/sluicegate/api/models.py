"""`GET /v1/models` and `GET /v1/models/{id}` in OpenAI's shape."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from sluicegate.api.json import json_response
from sluicegate.core.gateway import Gateway


def _model(gateway: Gateway, name: str) -> dict[str, Any]:
    provider = gateway.models.get(name)
    return {"id": name, "object": "model", "created": gateway.started_at, "owned_by": provider.owned_by}


async def list_models(request: Request) -> Response:
    gateway: Gateway = request.app.state.gateway
    gateway.keys.authenticate(request.headers.get("authorization"))
    return json_response({"object": "list", "data": [_model(gateway, n) for n in gateway.models.names()]})


async def retrieve_model(request: Request) -> Response:
    gateway: Gateway = request.app.state.gateway
    gateway.keys.authenticate(request.headers.get("authorization"))
    return json_response(_model(gateway, request.path_params["model_id"]))


async def health(request: Request) -> Response:
    return json_response({"status": "ok"})
