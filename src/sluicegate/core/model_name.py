"""A model name is one opaque identifier, never a path.

A wildcard entry (`gemini/*`) passes the rest of the name to its upstream, and some upstreams
put the model in the URL: a name that could read as more than one path segment (`..`, `.`,
percent-encoded or not, a backslash), a query (`?`) or a fragment (`#`), or that carries
control characters, is refused before routing, whatever the door. The check costs one pass
over a name already bounded by `MAX_MODEL_NAME` (longer names are simply unknown).
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import unquote

from sluicegate.errors import InvalidRequestError

# no configured name, nor a wildcard's model, is longer: past this a name is unknown at once
MAX_MODEL_NAME: Final = 256
_FORBIDDEN = re.compile(r"[\\?#\x00-\x1f\x7f-\x9f]")
_DOT_SEGMENT = re.compile(r"(?:^|/)\.{1,2}(?:/|$)")


def check_model_name(name: str) -> None:
    """Raise a 400 naming `model` when the name could address more than one model."""
    decoded = name
    for _ in range(3):  # `%252e` is `%2e` once decoded, then `.`
        once = unquote(decoded)
        if once == decoded:
            break
        decoded = once
    for form in (name, decoded):
        if _FORBIDDEN.search(form) or _DOT_SEGMENT.search(form):
            raise InvalidRequestError(
                "The model name must be a single identifier: no `.` or `..` path segments"
                " (also percent-encoded), backslashes, `?`, `#` or control characters.",
                param="model",
                code="invalid_model_name",
            )


def shown(name: str, limit: int = 80) -> str:
    """A client's model name as an error message may quote it: a long one cut short."""
    return name if len(name) <= limit else name[:limit] + "..."
