"""The ASGI application: routes, middleware and error handlers; nothing happens at import."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from sluicegate.api.admin.routes import admin_routes
from sluicegate.api.chat_completions.route import (
    chat_completions,
    render_openai_error,
    resume_chat_completion,
)
from sluicegate.api.completions.route import completions
from sluicegate.api.embeddings.route import embeddings
from sluicegate.api.gemini.errors import render_gemini_error
from sluicegate.api.gemini.route import gemini, get_gemini_model, list_gemini_models
from sluicegate.api.messages.errors import render_anthropic_error
from sluicegate.api.messages.route import count_tokens, messages, resume_message
from sluicegate.api.models import health, list_models, ready, retrieve_model
from sluicegate.api.responses.route import (
    cancel_response,
    create_response,
    delete_response,
    list_input_items,
    retrieve_response,
)
from sluicegate.errors import GatewayError, InvalidRequestError, NotFoundError
from sluicegate.gateway import Gateway
from sluicegate.governance.limits import RATE_LIMIT_HEADERS
from sluicegate.http.event_stream import EventStreamResponse
from sluicegate.http.request_id import RequestIdMiddleware
from sluicegate.observability.access_log import log_other_request
from sluicegate.observability.metrics import metrics_endpoint
from sluicegate.settings import Settings, load_settings

log = logging.getLogger("sluicegate")
STATIC_DIR = Path(__file__).parent / "web" / "static"


# Errors raised outside a door's endpoint (an unknown URL, a wrong method) read in the shape of
# the API whose path they were sent to; OpenAI's elsewhere.
ERROR_SHAPES: list[tuple[str, Callable[[GatewayError], Response]]] = [
    ("/v1/messages", render_anthropic_error),
    ("/v1/v1/messages", render_anthropic_error),  # an Anthropic SDK given a base URL ending in /v1
    ("/v1beta", render_gemini_error),
]


def render_error(request: Request, error: GatewayError) -> Response:
    path = request.url.path
    for prefix, render in ERROR_SHAPES:
        if path == prefix or path.startswith(prefix + "/"):
            return render(error)
    return render_openai_error(error)


async def gateway_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)
    return render_error(request, exc)


_V1_PATHS = ("/chat/completions", "/models", "/messages", "/responses", "/completions", "/embeddings")


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    error: GatewayError
    if exc.status_code == 404:
        path = request.url.path
        message = f"Unknown request URL: {request.method} {path}."
        if not path.startswith("/v1/") and any(path.startswith(p) for p in _V1_PATHS):
            message += f" The API lives under /v1: use /v1{path} (a client's base_url ends in /v1)."
        elif path.startswith("/v1/v1/"):
            message += (
                f" The path has /v1 twice: use {path[3:]}. The Anthropic SDKs add /v1 themselves,"
                " so their base_url is the gateway's address without /v1."
            )
        error = NotFoundError(message, code=None)
    else:
        error = InvalidRequestError(str(exc.detail), status=exc.status_code, code=None)
    response = render_error(request, error)
    response.headers.update(dict(exc.headers or {}))
    return response


async def unexpected_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    error = GatewayError(f"The gateway failed to handle the request: {type(exc).__name__}.")
    return render_error(request, error)


async def playground(request: Request) -> Response:
    return FileResponse(STATIC_DIR / "index.html", headers={"cache-control": "no-cache"})


async def usage_page(request: Request) -> Response:
    """The usage dashboard; it asks for the admin key itself and reads `/admin/` with it."""
    return FileResponse(STATIC_DIR / "usage.html", headers={"cache-control": "no-cache"})


# The front doors' POST endpoints, reached without Starlette's middleware and routing (the hot
# path): each door's endpoint already turns every error into an answer in its own shape, so the
# stack's exception handlers have nothing to add; it chooses the request id itself and puts it
# on every answer (the request-id middleware's work); and without an Origin header the CORS
# layer only appends `vary: Origin`, which is done here. A request with an Origin header takes
# the full stack.
DIRECT_ENDPOINTS: dict[str, Callable[[Request], Awaitable[Response | EventStreamResponse]]] = {
    "/v1/chat/completions": chat_completions,
    "/v1/messages": messages,
    "/v1/responses": create_response,
    "/v1/embeddings": embeddings,
    "/v1/completions": completions,
}


class GatewayApp(Starlette):
    """The Starlette app, with a lifespan of its own: a gateway that cannot start (a model that
    does not load, an upstream config that cannot work) says so in one line, not a traceback;
    and the request-id middleware outside everything, its error handling included."""

    def build_middleware_stack(self) -> ASGIApp:
        return RequestIdMiddleware(super().build_middleware_stack(), on_other=log_other_request)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path"):
                endpoint = DIRECT_ENDPOINTS.get(scope["path"])
                if endpoint is not None and not any(name == b"origin" for name, _ in scope["headers"]):
                    scope["app"] = self
                    await _direct(endpoint, scope, receive, send)
                    return
            await super().__call__(scope, receive, send)
            return
        gateway: Gateway = self.state.gateway
        await receive()  # lifespan.startup
        try:
            await gateway.start()
        except Exception as exc:
            log.debug("start-up failed", exc_info=True)
            await send({"type": "lifespan.startup.failed", "message": f"sluicegate cannot start: {_words(exc)}"})
            return
        await send({"type": "lifespan.startup.complete"})
        await receive()  # lifespan.shutdown
        try:
            await gateway.close()
        except Exception as exc:
            log.warning("shutting down: %s", _words(exc), exc_info=True)
        await send({"type": "lifespan.shutdown.complete"})


async def _direct(
    endpoint: Callable[[Request], Awaitable[Response | EventStreamResponse]],
    scope: Scope,
    receive: Receive,
    send: Send,
) -> None:
    response = await endpoint(Request(scope, receive, send))
    if isinstance(response, EventStreamResponse):
        if not any(name == b"x-request-id" for name, _ in response.headers):
            response.headers.append((b"x-request-id", scope["state"]["exchange"].request_id.encode()))
        response.headers.append((b"vary", b"Origin"))
    else:
        response.headers["vary"] = ", ".join([*response.headers.getlist("vary"), "Origin"])
    await response(scope, receive, send)


def _words(exc: Exception) -> str:
    return exc.message if isinstance(exc, GatewayError) else f"{exc} ({type(exc).__name__})"


def create_app(settings: Settings | None = None, gateway: Gateway | None = None) -> Starlette:
    settings = settings or load_settings()
    gw = gateway or Gateway.build(settings)

    routes = [
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/responses", create_response, methods=["POST"]),
        Route("/v1/embeddings", embeddings, methods=["POST"]),
        Route("/v1/completions", completions, methods=["POST"]),
        Route("/v1/responses/{response_id}", retrieve_response, methods=["GET"]),
        Route("/v1/responses/{response_id}", delete_response, methods=["DELETE"]),
        Route("/v1/responses/{response_id}/input_items", list_input_items, methods=["GET"]),
        Route("/v1/responses/{response_id}/cancel", cancel_response, methods=["POST"]),
        Route("/v1/messages", messages, methods=["POST"]),
        Route("/v1/messages/count_tokens", count_tokens, methods=["POST"]),
        Route("/v1/messages/{stream_id}/stream", resume_message, methods=["GET"]),
        Route("/v1/chat/completions/{stream_id}/stream", resume_chat_completion, methods=["GET"]),
        Route("/v1beta/models/{target:path}", gemini, methods=["POST"]),
        Route("/v1/models/{target:path}", gemini, methods=["POST"]),  # google-genai with api_version="v1"
        Route("/v1beta/models", list_gemini_models, methods=["GET"]),
        Route("/v1beta/models/{model:path}", get_gemini_model, methods=["GET"]),
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/v1/models/{model_id:path}", retrieve_model, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/health/ready", ready, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
        Route("/", playground, methods=["GET"]),
        Route("/usage", usage_page, methods=["GET"]),
        *admin_routes(),
        Mount("/static", app=StaticFiles(directory=STATIC_DIR, check_dir=False), name="static"),
    ]
    middleware = [
        Middleware(
            CORSMiddleware,
            allow_origins=settings.server.cors_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE", "OPTIONS"],
            allow_headers=["*"],
            expose_headers=[
                "retry-after",
                "x-request-id",
                "request-id",
                "x-sluicegate-token-count",
                "x-sluicegate-deployment",
                "x-sluicegate-attempts",
                "x-sluicegate-cache",
                *RATE_LIMIT_HEADERS,
            ],
            max_age=600,
        )
    ]
    app = GatewayApp(
        routes=routes,
        middleware=middleware,
        exception_handlers={
            GatewayError: gateway_error,
            HTTPException: http_error,
            Exception: unexpected_error,
        },
    )
    app.state.gateway = gw
    return app


def create_app_from_env() -> Starlette:
    """Factory for uvicorn workers: settings come from SLUICEGATE_CONFIG / SLUICEGATE_DATA_DIR."""
    return create_app(load_settings())
