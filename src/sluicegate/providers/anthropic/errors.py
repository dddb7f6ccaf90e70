"""Anthropic's HTTP errors -> gateway errors the client can act on.

Anthropic answers `{"type": "error", "error": {"type": "...", "message": "..."}}`. The client's
own mistakes (400, 413) keep their status; the gateway's credentials or model entry being wrong
(401, 403, 404) are the operator's to fix, so the client gets a 502 saying which entry; an
overloaded upstream (529) is a 503 the client may retry, after `retry-after` when sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from sluicegate.errors import (
    GatewayError,
    InvalidRequestError,
    PayloadTooLargeError,
    RateLimitError,
    ServiceUnavailableError,
    UpstreamConfigError,
    UpstreamError,
    UpstreamTimeoutError,
)
from sluicegate.providers.error_text import failed, redact
from sluicegate.providers.openai.errors import retry_after


def upstream_error(status: int, body: bytes, headers: Mapping[str, str], name: str) -> GatewayError:
    kind, message = error_details(body)
    message = redact(message)  # the upstream's words reach the client only without secrets
    said = f"{message or 'no details'}" + (f" ({kind})" if kind else "")
    delay = retry_after(headers)  # only the upstream's own word: none when it sent none
    upstream = f"The Anthropic upstream of `{name}`"
    if status == 400:
        return InvalidRequestError(f"{upstream} rejected the request: {said}", code=kind)
    if status in (401, 403):
        return UpstreamConfigError(
            f"{upstream} refused the gateway's credentials ({status}: {said})."
            f" Check the `api_key` of the model entry `{name}`."
        )
    if status == 404:
        return UpstreamConfigError(
            f"{upstream} answered 404: {said}. Check the `upstream_model` and `base_url` of the model entry `{name}`."
        )
    if status == 413:
        return PayloadTooLargeError(f"{upstream} found the request too large: {said}")
    if status == 429:
        return RateLimitError(f"{upstream} is rate limiting requests: {said}", retry_after=delay)
    if status in (503, 529):
        return ServiceUnavailableError(
            failed(name, status, "is overloaded"), code="upstream_overloaded", retry_after=delay
        )
    if status == 504:
        return UpstreamTimeoutError(failed(name, status, "timed out"))
    if status >= 500:
        return UpstreamError(failed(name, status))
    return UpstreamError(f"{upstream} answered HTTP {status}: {said}")


def error_details(body: bytes) -> tuple[str | None, str | None]:
    """The error's type and message, from Anthropic's shape or whatever a proxy sent."""
    try:
        parsed: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body[:300].decode("utf-8", errors="replace").strip()
        return None, text or None
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if isinstance(error, dict):
        kind, message = error.get("type"), error.get("message")
        return (kind if isinstance(kind, str) else None), (message if isinstance(message, str) else None)
    if isinstance(error, str):
        return None, error
    if isinstance(parsed, dict) and isinstance(parsed.get("message"), str):
        return None, parsed["message"]
    return None, None
