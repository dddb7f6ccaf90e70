"""What of an upstream's error text may reach the client.

An upstream's 4xx message often helps the client (`'temperature' must be at most 2`), so it is
passed on, but with what an upstream or a proxy in front of it may leak taken out: keys in URLs
(`api_key=`, `key=`...), bearer tokens, `sk-...` style secrets, Google API keys, organisation
and project ids, and cut to `LIMIT` characters. A 5xx or a transport failure says nothing the
client can act on: the client gets the gateway's own words (`failed`), the upstream's text goes
to the log.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Final

from sluicegate.errors import InvalidRequestError, UpstreamError

log = logging.getLogger("sluicegate.providers")

LIMIT: Final = 500
_VALUE = r"[^\s&\"',;)}\]]+"
_RULES: Final = (
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{4,}"), r"\1 [redacted]"),
    # key=..., api_key=..., access_token=... in URLs and query strings
    (re.compile(r"(?i)\b(\w*(?:key|token|secret|password|signature|sig))=" + _VALUE), r"\1=[redacted]"),
    # "api_key": "...", x-api-key: ..., password: ... in echoed headers and bodies
    (
        re.compile(
            r"(?i)\b((?:x-)?(?:api[_-]?key|access[_-]?token|secret|password|authorization))"
            r"([\"']?\s*:\s*[\"']?)" + _VALUE
        ),
        r"\1\2[redacted]",
    ),
    (re.compile(r"\b(sk|rk|pk)-[A-Za-z0-9_*.-]{6,}"), r"\1-[redacted]"),
    (re.compile(r"\bAIza[0-9A-Za-z_-]{20,}"), "[redacted]"),
    (re.compile(r"\b(org|proj)([-_])[A-Za-z0-9]{10,}"), r"\1\2[redacted]"),
)


def redact(text: str | None, limit: int = LIMIT) -> str | None:
    """An upstream's message as a client may read it: secrets out, at most `limit` characters."""
    if not text:
        return text
    text = text[: limit * 4]  # a long dump is cut before the rules run over it
    for pattern, replacement in _RULES:
        text = pattern.sub(replacement, text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def failed(name: str, status: int | None = None, what: str = "failed") -> str:
    """The gateway's own words for an upstream's 5xx (the request id is added by the door)."""
    said = f" with HTTP {status}" if status is not None else ""
    return f"The upstream of `{name}` {what}{said}; its answer is in the gateway's log."


def mid_stream_error(name: str, error: Any) -> UpstreamError | InvalidRequestError:
    """An `error` an upstream put in its stream: a 4xx-coded one keeps its (redacted) message,
    any other is the upstream's failure, told in the gateway's words (its text to the log)."""
    code = error.get("code") if isinstance(error, dict) else None
    message = error.get("message") if isinstance(error, dict) else str(error)
    if isinstance(code, int) and 400 <= code < 500 and code not in (408, 429) and isinstance(message, str):
        return InvalidRequestError(
            f"The upstream of `{name}` refused the request mid-stream: {redact(message)}", status=code
        )
    log.warning("upstream of %s reported an error mid-stream: %.500s", name, error)
    return UpstreamError(
        f"The upstream of `{name}` reported an error mid-stream; its words are in the gateway's log."
    )
