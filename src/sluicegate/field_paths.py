"""From a pydantic validation error to the field a person must fix: written once for the doors'
`param` and the config's messages.

pydantic's location mixes field names with labels of the union branch it tried (`str`,
`list[str]`, `constrained-int`, a model's class name, a discriminated union's tag); only the
field names belong in a path. Each audience spells the path its own way: OpenAI's
`messages.[0].content`, Anthropic's `messages.0.content`, the config's `models[0].provider`.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Literal

from pydantic_core import ErrorDetails

PathStyle = Literal["openai", "anthropic", "config"]

_SCALAR_LABELS = frozenset({"str", "int", "float", "bool", "none"})


def is_branch_label(part: int | str, tags: Collection[str] | None = None) -> bool:
    """A union branch's label, not a field name; real fields (`stream`, `stop`...) may start
    like one. With `tags`, only those are labels (a config whose only unions are discriminated
    by them, and whose mapping keys, a model's name for one, may look like anything)."""
    if isinstance(part, int):
        return False
    if tags is not None:
        return part in tags
    return part in _SCALAR_LABELS or "[" in part or "-" in part or part[:1].isupper()


def field_names(loc: Sequence[int | str], tags: Collection[str] | None = None) -> list[int | str]:
    """The location without its branch labels."""
    return [part for part in loc if not is_branch_label(part, tags)]


def field_path(loc: Sequence[int | str], style: PathStyle, tags: Collection[str] | None = None) -> str:
    parts = field_names(loc, tags)
    if style == "anthropic":
        return ".".join(str(part) for part in parts)
    if style == "openai":
        return ".".join(f"[{part}]" if isinstance(part, int) else part for part in parts)
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def most_specific(errors: list[ErrorDetails]) -> ErrorDetails:
    """The error to report: of the first failing field's errors (a union gives one per branch),
    a real constraint or a missing field beats "wrong type for this branch", deeper beats shallower."""
    field = errors[0]["loc"][:1]
    same_field = [error for error in errors if error["loc"][:1] == field]
    return min(same_field, key=lambda error: (error["type"].endswith("_type"), -len(error["loc"])))
