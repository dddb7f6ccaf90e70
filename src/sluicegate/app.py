"""The ASGI application: routes, middleware and error handlers; nothing happens at import."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from sluicegate.api.chat_completions.route import chat_completions
from sluicegate.api.json import json_response
from sluicegate.api.models import health, list_models, retrieve_model
from sluicegate.errors import GatewayError, InvalidRequestError, NotFoundError
from sluicegate.gateway import Gateway
from sluicegate.settings import Settings, load_settings

log = logging.getLogger("sluicegate")
STATIC_DIR = Path(__file__).parent / "web" / "static"


async def gateway_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)
    return json_response(exc.to_dict(), status=exc.http_status, headers=exc.headers())


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    error: GatewayError
    if exc.status_code == 404:
        error = NotFoundError(f"Unknown request URL: {request.method} {request.url.path}.", code=None)
    else:
        error = InvalidRequestError(str(exc.detail), status=exc.status_code, code=None)
    return json_response(error.to_dict(), status=error.http_status, headers=dict(exc.headers or {}))


async def unexpected_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    error = GatewayError(f"The gateway failed to handle the request: {type(exc).__name__}.")
    return json_response(error.to_dict(), status=500)


async def playground(request: Request) -> Response:
    return FileResponse(STATIC_DIR / "index.html", headers={"cache-control": "no-cache"})


def create_app(settings: Settings | None = None, gateway: Gateway | None = None) -> Starlette:
    settings = settings or load_settings()
    gw = gateway or Gateway.build(settings)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await gw.start()
        try:
            yield
        finally:
            await gw.close()

    routes = [
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/v1/models/{model_id:path}", retrieve_model, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/", playground, methods=["GET"]),
        Mount("/static", app=StaticFiles(directory=STATIC_DIR, check_dir=False), name="static"),
    ]
    middleware = [
        Middleware(
            CORSMiddleware,
            allow_origins=settings.server.cors_origins,
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["*"],
            expose_headers=["retry-after", "x-request-id"],
            max_age=600,
        )
    ]
    app = Starlette(
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
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
