"""Upstream HTTP failures -> gateway errors the client can act on.

The client's own mistakes (400, 413, 422) keep their status and the upstream's message;
the gateway's credentials being refused is the gateway's problem (502), not the client's 401.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from sluicegate.errors import (
    GatewayError,
    InvalidRequestError,
    RateLimitError,
    ServiceUnavailableError,
    UpstreamError,
)


def upstream_error(status: int, body: bytes, headers: Mapping[str, str], name: str) -> GatewayError:
    message, param, code = _details(body)
    delay = retry_after_seconds(headers.get("retry-after") or headers.get("Retry-After"))
    if status in (400, 422):
        return InvalidRequestError(message or "The upstream rejected the request.", param=param, code=code)
    if status == 404:
        # The client asked for a model the gateway serves; the upstream not knowing it (a wrong
        # `upstream_model` or base_url) is the operator's mistake, not the client's.
        return UpstreamError(
            f"The upstream of `{name}` answered 404 (not found): {message or 'no details'}."
            " Check the model entry's base_url and upstream_model."
        )
    if status == 413:
        return InvalidRequestError(message or "Request too large for the upstream.", status=413, code=code)
    if status == 429:
        return RateLimitError(
            message or f"The upstream of `{name}` is rate limiting requests.", retry_after=delay or 1.0
        )
    if status in (401, 403):
        return UpstreamError(f"The upstream of `{name}` refused the gateway's credentials ({status}).")
    if status == 503:
        return ServiceUnavailableError(
            message or f"The upstream of `{name}` is unavailable.", retry_after=delay or 1.0
        )
    return UpstreamError(f"The upstream of `{name}` failed with HTTP {status}: {message or 'no details'}")


def _details(body: bytes) -> tuple[str | None, str | None, str | None]:
    try:
        parsed: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body[:300].decode("utf-8", errors="replace").strip()
        return (text or None), None, None
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if isinstance(error, dict):
        code = error.get("code")
        return (
            _str(error.get("message")),
            _str(error.get("param")),
            str(code) if code is not None else None,
        )
    if isinstance(error, str):
        return error, None, None
    if isinstance(parsed, dict) and isinstance(parsed.get("message"), str):
        return parsed["message"], None, None
    return None, None, None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
