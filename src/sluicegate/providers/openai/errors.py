"""Upstream HTTP failures -> gateway errors the client can act on.

The client's own mistakes (400, 413, 422) keep their status and the upstream's message;
the gateway's credentials being refused, or the upstream not knowing the configured model, is
the operator's problem (502 `UpstreamConfigError`), not the client's 401 or 404. A Retry-After is
passed on only when the upstream sent one (seconds, an HTTP date or `retry-after-ms`): a made-up
value would be a guess presented as a promise.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any

import orjson

from sluicegate.errors import (
    GatewayError,
    InvalidRequestError,
    RateLimitError,
    ServiceUnavailableError,
    UpstreamConfigError,
    UpstreamError,
)
from sluicegate.providers.error_text import failed, redact

# upstreams that answer an unknown model with 400 rather than 404 say so in the code
_MODEL_CODES = frozenset({"model_not_found", "model_not_available", "invalid_model"})


def upstream_error(status: int, body: bytes, headers: Mapping[str, str], name: str) -> GatewayError:
    message, param, code = _details(body)
    message = redact(message)  # the upstream's words reach the client only without secrets
    delay = retry_after(headers)
    if status in (400, 422) and code not in _MODEL_CODES:
        return InvalidRequestError(message or "The upstream rejected the request.", param=param, code=code)
    if status in (400, 422):
        return UpstreamConfigError(
            f"The upstream of `{name}` does not know the configured model ({status}): {message or 'no details'}."
            " Check the model entry's upstream_model."
        )
    if status == 404:
        # The client asked for a model the gateway serves; the upstream not knowing it (a wrong
        # `upstream_model` or base_url) is the operator's mistake, not the client's.
        return UpstreamConfigError(
            f"The upstream of `{name}` answered 404 (not found): {message or 'no details'}."
            " Check the model entry's base_url and upstream_model."
        )
    if status == 413:
        return InvalidRequestError(message or "Request too large for the upstream.", status=413, code=code)
    if status == 429:
        return RateLimitError(
            message or f"The upstream of `{name}` is rate limiting requests.", retry_after=delay
        )
    if status in (401, 403):
        return UpstreamConfigError(
            f"The upstream of `{name}` refused the gateway's credentials ({status})."
        )
    if status == 503:
        return ServiceUnavailableError(failed(name, status, "is unavailable"), retry_after=delay)
    if status >= 500:
        return UpstreamError(failed(name, status))
    return UpstreamError(f"The upstream of `{name}` answered HTTP {status}: {message or 'no details'}")


def _details(body: bytes) -> tuple[str | None, str | None, str | None]:
    try:
        parsed: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        # A plain sentence is passed on; a proxy's HTML page or a long dump stays in the log.
        text = body[:300].decode("utf-8", errors="replace").strip()
        plain = text and len(body) <= 300 and "<" not in text and "\n" not in text
        return (text if plain else None), None, None
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


def retry_after(headers: Mapping[str, str]) -> float | None:
    """The upstream's own wait, in seconds, from `retry-after-ms` or `retry-after`; else None."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            value = float(millis) / 1000
        except ValueError:
            value = -1.0
        if value >= 0:
            return value
    return retry_after_seconds(headers.get("retry-after") or headers.get("Retry-After"))


def retry_after_seconds(value: str | None) -> float | None:
    """Delta seconds or an HTTP date; None when absent, unreadable, negative or in the past."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError, IndexError):
            return None
    return seconds if seconds >= 0 else None
