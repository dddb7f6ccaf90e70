"""A front door as the shared serving layer sees it: how it finds the key, how it renders an
error, and the endpoint that authenticates, runs its handler and settles what it admitted."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from sluicegate.core.exchange import Exchange
from sluicegate.errors import AuthenticationError, GatewayError
from sluicegate.gateway import Gateway
from sluicegate.http.event_stream import EventStreamResponse
from sluicegate.http.request_id import choose_request_id
from sluicegate.http.shutdown import shutting_down

log = logging.getLogger("sluicegate.serving")


@dataclass(frozen=True, slots=True)
class Door:
    name: str  # chat_completions | messages | responses
    secret: Callable[[Request], str | None]  # the API key the client sent, in this door's header
    render_error: Callable[[GatewayError], Response]


Handler = Callable[[Request, Exchange, Gateway], Awaitable[Response | EventStreamResponse]]


def bearer_secret(request: Request) -> str | None:
    authorization = request.headers.get("authorization")
    if not authorization:
        return None
    scheme, _, secret = authorization.partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret:
        raise AuthenticationError("The Authorization header must be 'Bearer <API key>'.")
    return secret


def request_id(request: Request) -> str:
    """The id the request-id middleware chose (the client's own `x-request-id` when sane)."""
    chosen = request.scope.get("state", {}).get("request_id")
    return str(chosen) if chosen else choose_request_id(request.headers.get("x-request-id"))


def with_request_id(error: GatewayError, request_id: str) -> None:
    """A failure of the gateway or its upstream (5xx) names the request, so the client can
    point the operator at its log lines."""
    if error.http_status >= 500 and request_id not in error.message:
        error.message = f"{error.message} (request id {request_id})"


def door_endpoint(door: Door, handler: Handler) -> Callable[[Request], Awaitable[Response | EventStreamResponse]]:
    """A Starlette endpoint: authenticates, runs the door's handler, renders its errors in the
    door's shape, and settles whatever the handler admitted but did not finish."""

    async def endpoint(request: Request) -> Response | EventStreamResponse:
        gateway: Gateway = request.app.state.gateway
        exchange = Exchange(request_id=request_id(request), door=door.name)
        request.scope.setdefault("state", {})["exchange"] = exchange  # its own log line, after the last byte
        try:
            if gateway.shutdown.begun:
                raise shutting_down()
            key = await gateway.keys.resolve(door.secret(request))
            exchange.key_id, exchange.key_name = key.id, key.name
            response = await handler(request, exchange, gateway)
        except GatewayError as exc:
            with_request_id(exc, exchange.request_id)
            exchange.failed(exc.http_status, exc.error_type, exc.code, exc.message)
            if exc.deployment:  # routing tried upstreams before it gave up
                exchange.deployment, exchange.attempts = exc.deployment, exc.attempts
            gateway.settle(exchange)
            response = door.render_error(exc)
            response.headers.update(exchange.response_headers)
        except Exception as exc:
            log.exception("request %s failed: %s %s", exchange.request_id, request.method, request.url.path)
            error = GatewayError(f"The gateway failed to handle the request ({type(exc).__name__}).")
            with_request_id(error, exchange.request_id)
            exchange.failed(500, error.error_type, error.code, error.message)
            gateway.settle(exchange)
            response = door.render_error(error)
        if isinstance(response, Response):
            response.headers["x-request-id"] = exchange.request_id
        return response

    return endpoint
