"""Google's error bodies -> gateway errors in OpenAI's shape, with the status the client can act on.

Google answers `{"error": {"code", "message", "status", "details"}}` (a streaming endpoint may
wrap it in a list). A refused API key arrives as a 400 INVALID_ARGUMENT whose details name
`API_KEY_INVALID`: it is the gateway's credential, so 502, never the client's 400. A 429's wait
comes from the `retry-after` header or the RetryInfo detail (`"retryDelay": "37s"`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from sluicegate.errors import (
    GatewayError,
    InvalidRequestError,
    ModelNotFoundError,
    RateLimitError,
    ServiceUnavailableError,
    UpstreamConfigError,
    UpstreamError,
    UpstreamTimeoutError,
)
from sluicegate.providers.error_text import failed, redact
from sluicegate.providers.openai.errors import retry_after

_KEY_REASONS = frozenset(
    {"API_KEY_INVALID", "API_KEY_EXPIRED", "API_KEY_SERVICE_BLOCKED", "API_KEY_HTTP_REFERRER_BLOCKED"}
)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")


class PromptBlockedError(InvalidRequestError):
    """Gemini blocked the prompt (`promptFeedback.blockReason`): a 400 for other doors; the
    Gemini door answers it as Gemini does, with the feedback (its safety ratings) as sent."""

    def __init__(self, message: str, feedback: dict[str, Any] | None = None) -> None:
        super().__init__(message, code="content_filter")
        self.feedback = feedback if feedback is not None else {}


def upstream_error(
    status: int, body: bytes, headers: Mapping[str, str], name: str, wildcard: bool = False
) -> GatewayError:
    error = _error_object(body)
    return error_from(status, error, headers, name, wildcard)


def error_from(
    status: int, error: dict[str, Any], headers: Mapping[str, str], name: str, wildcard: bool = False
) -> GatewayError:
    """`error` is Google's error object (`{"code", "message", "status", "details"}`)."""
    message = redact(error.get("message")) if isinstance(error.get("message"), str) else None
    word = error.get("status") if isinstance(error.get("status"), str) else None
    code = word.lower() if word else None
    said = f"Gemini answered {status}{' ' + word if word else ''}: {message or 'no details'}"
    if status in (401, 403) or _reasons(error) & _KEY_REASONS:
        return UpstreamConfigError(
            f"The upstream of `{name}` refused the gateway's credentials ({status}{' ' + word if word else ''})."
        )
    if status in (400, 422):
        return InvalidRequestError(f"{said}", code=code)
    if status == 404:
        if wildcard:
            # the client chose the upstream model through a wildcard entry: its name is the mistake
            return ModelNotFoundError(f"{said}", param="model")
        return UpstreamConfigError(
            f"The upstream of `{name}` answered 404 (not found): {message or 'no details'}."
            f" Check the model entry `{name}` (upstream_model, base_url, api_version)."
        )
    if status == 413:
        return InvalidRequestError(said, status=413, code=code or "request_too_large")
    if status in (429, 503):
        # only the upstream's own wait (header or RetryInfo): none promised when it gave none
        delay = retry_after(headers)
        delay = _retry_delay(error) if delay is None else delay
        if status == 429:
            return RateLimitError(said, retry_after=delay)
        return ServiceUnavailableError(failed(name, status, "is unavailable"), retry_after=delay)
    if status == 504:
        return UpstreamTimeoutError(failed(name, status, "timed out"))
    if status >= 500:
        return UpstreamError(failed(name, status))
    return UpstreamError(f"The upstream of `{name}` answered HTTP {status}: {message or 'no details'}")


def _error_object(body: bytes) -> dict[str, Any]:
    try:
        parsed: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        # a plain sentence is passed on; a proxy's HTML page or a long dump stays in the log
        text = body[:300].decode("utf-8", errors="replace").strip()
        plain = text and len(body) <= 300 and "<" not in text and "\n" not in text
        return {"message": text} if plain else {}
    if isinstance(parsed, list) and parsed:
        parsed = parsed[0]
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if isinstance(error, dict):
        return error
    if isinstance(error, str):
        return {"message": error}
    return {}


def _details(error: dict[str, Any]) -> list[dict[str, Any]]:
    details = error.get("details")
    return [item for item in details if isinstance(item, dict)] if isinstance(details, list) else []


def _reasons(error: dict[str, Any]) -> set[str]:
    return {item["reason"] for item in _details(error) if isinstance(item.get("reason"), str)}


def _retry_delay(error: dict[str, Any]) -> float | None:
    for item in _details(error):
        delay = item.get("retryDelay")
        if isinstance(delay, str) and (match := _DURATION.match(delay)):
            return float(match.group(1))
    return None
