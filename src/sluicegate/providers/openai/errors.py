"""Upstream HTTP failures -> gateway errors the client can act on.

The client's own mistakes (400, 404, 413, 422) keep their status and the upstream's message;
the gateway's credentials being refused is the gateway's problem (502), not the client's 401.
"""

from __future__ import annotations

from typing import Any

import orjson

from sluicegate.errors import (
    GatewayError,
    InvalidRequestError,
    NotFoundError,
    RateLimitError,
    ServiceUnavailableError,
    UpstreamError,
)


def upstream_error(status: int, body: bytes, retry_after: str | None, name: str) -> GatewayError:
    message, param, code = _details(body)
    delay = _seconds(retry_after)
    if status in (400, 422):
        return InvalidRequestError(message or "The upstream rejected the request.", param=param, code=code)
    if status == 404:
        return NotFoundError(message or f"The upstream of `{name}` answered 404.", param=param, code=code)
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


def _seconds(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
