"""Anthropic's side of the gateway's errors: how the key is sent, and how an error reads.

Anthropic answers `{"type": "error", "error": {"type", "message"}}` with its own statuses:
400 invalid_request_error, 401 authentication_error, 402 billing_error, 403 permission_error,
404 not_found_error, 413 request_too_large, 429 rate_limit_error, 500 api_error, 504
timeout_error, 529 overloaded_error. Every gateway error is rendered in that shape, so the
`anthropic` SDKs raise their own typed exceptions; the exchange keeps the gateway's status.
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
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServiceUnavailableError,
    UpstreamTimeoutError,
)


def anthropic_secret(request: Request) -> str | None:
    """`x-api-key` as the Anthropic SDKs send it, or `Authorization: Bearer` (`auth_token`)."""
    key = request.headers.get("x-api-key")
    if key is not None and key.strip():
        return key.strip()
    if request.headers.get("authorization"):
        return bearer_secret(request)
    raise AuthenticationError("x-api-key header is required")


def anthropic_status(error: GatewayError) -> tuple[int, str]:
    """The status and error type Anthropic would answer with for this gateway error."""
    status = error.http_status
    if status == 413:
        return 413, "request_too_large"
    if isinstance(error, AuthenticationError):
        return 401, "authentication_error"
    if isinstance(error, PermissionDeniedError):
        return 403, "permission_error"
    if isinstance(error, NotFoundError):
        return 404, "not_found_error"
    if isinstance(error, RateLimitError):
        return 429, "rate_limit_error"
    if isinstance(error, InsufficientBalanceError):
        return 402, "billing_error"  # not a 500, which SDKs retry
    if isinstance(error, ServiceUnavailableError) or status in (503, 529):
        return 529, "overloaded_error"
    if isinstance(error, UpstreamTimeoutError) or status == 504:
        return 504, "timeout_error"
    if isinstance(error, InvalidRequestError):
        return (status if 400 <= status < 500 else 400), "invalid_request_error"
    return 500, "api_error"  # the gateway or its upstream failed (UpstreamError: 502 in the record)


def error_object(error: GatewayError) -> dict[str, Any]:
    _, kind = anthropic_status(error)
    return {"type": "error", "error": {"type": kind, "message": error.message}}


def error_event(error: GatewayError) -> bytes:
    """A failure after the first byte, as Anthropic streams it (and nothing after it)."""
    return b"event: error\ndata: " + orjson.dumps(error_object(error)) + b"\n\n"


def render_anthropic_error(error: GatewayError) -> Response:
    status, _ = anthropic_status(error)
    return json_response(error_object(error), status=status, headers=error.headers())
