"""`GET /v1/models` and `GET /v1/models/{id}` in OpenAI's shape."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from sluicegate.api.json import json_response
from sluicegate.api.serving import bearer_secret
from sluicegate.gateway import Gateway


def _model(gateway: Gateway, name: str) -> dict[str, Any]:
    provider = gateway.models.get(name)
    entry: dict[str, Any] = {
        "id": name,
        "object": "model",
        "created": gateway.started_at,
        "owned_by": provider.owned_by,
    }
    target = gateway.models.alias_target(name)
    if target is not None:
        entry["alias_for"] = target  # so nobody takes an alias for the model it names
    return entry


async def list_models(request: Request) -> Response:
    gateway: Gateway = request.app.state.gateway
    await gateway.keys.resolve(bearer_secret(request))
    return json_response({"object": "list", "data": [_model(gateway, n) for n in gateway.models.names()]})


async def retrieve_model(request: Request) -> Response:
    gateway: Gateway = request.app.state.gateway
    await gateway.keys.resolve(bearer_secret(request))
    return json_response(_model(gateway, request.path_params["model_id"]))


async def health(request: Request) -> Response:
    """Liveness: 200 while the process serves, with each dependency's last known state (checked
    in the background: no round trip per probe)."""
    gateway = request.app.state.gateway
    return json_response(gateway.dependencies.to_json())


async def ready(request: Request) -> Response:
    """Readiness: 503 (same body) while a dependency is down, for a load balancer to route around."""
    dependencies = request.app.state.gateway.dependencies
    return json_response(dependencies.to_json(), status=200 if dependencies.healthy else 503)
