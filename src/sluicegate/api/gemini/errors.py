"""Gemini's side of the gateway's errors: how the key is sent, and how an error reads.

Google answers `{"error": {"code", "message", "status"}}`: the HTTP status, and its canonical
name (INVALID_ARGUMENT, UNAUTHENTICATED, PERMISSION_DENIED, NOT_FOUND, RESOURCE_EXHAUSTED,
INTERNAL, UNAVAILABLE, DEADLINE_EXCEEDED). Every gateway error is rendered in that shape, so
Google's SDKs raise their own typed errors; the exchange keeps the gateway's status.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from sluicegate.api.json import json_response
from sluicegate.api.serving import bearer_secret
from sluicegate.errors import (
    AuthenticationError,
    GatewayError,
    InsufficientBalanceError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServiceUnavailableError,
    UpstreamTimeoutError,
)


def gemini_secret(request: Request) -> str | None:
    """`x-goog-api-key` as Google's SDKs send it, `?key=` as curl examples do, or a bearer token."""
    key = request.headers.get("x-goog-api-key") or request.query_params.get("key")
    if key is not None and key.strip():
        return key.strip()
    if request.headers.get("authorization"):
        return bearer_secret(request)
    raise AuthenticationError("API key not given: send it in the x-goog-api-key header or the key parameter.")


def gemini_status(error: GatewayError) -> tuple[int, str]:
    """The HTTP status and Google's status name for this gateway error."""
    status = error.http_status
    if isinstance(error, AuthenticationError):
        return 401, "UNAUTHENTICATED"
    if isinstance(error, PermissionDeniedError):
        return 403, "PERMISSION_DENIED"
    if isinstance(error, NotFoundError):
        return 404, "NOT_FOUND"
    if isinstance(error, RateLimitError | InsufficientBalanceError):
        return 429, "RESOURCE_EXHAUSTED"  # a budget is a quota in Google's words
    if isinstance(error, ServiceUnavailableError) or status in (503, 529):
        return 503, "UNAVAILABLE"
    if isinstance(error, UpstreamTimeoutError) or status == 504:
        return 504, "DEADLINE_EXCEEDED"
    if 400 <= status < 500:
        return status, "INVALID_ARGUMENT"
    return 500, "INTERNAL"


def error_object(error: GatewayError) -> dict[str, Any]:
    code, name = gemini_status(error)
    return {"error": {"code": code, "message": error.message, "status": name}}


def error_bytes(error: GatewayError) -> bytes:
    return orjson.dumps(error_object(error))


def render_gemini_error(error: GatewayError) -> Response:
    status, _ = gemini_status(error)
    return json_response(error_object(error), status=status, headers=error.headers())
