"""Config mistakes in plain words, with the file and line they are on.

pydantic reports a location as a path (`models.0.provider`) in its own wording; an operator
wants "sluicegate.yaml, line 7: models[0].provider: ..." naming the thing to fix. The YAML
node tree gives each path its line.
"""

from __future__ import annotations

import difflib
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from sluicegate.providers.catalog import PROVIDERS

PROVIDER_NAMES = tuple(PROVIDERS)


def yaml_error(path: str, exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    where = f"{path}, line {mark.line + 1}, column {mark.column + 1}" if mark is not None else path
    context = getattr(exc, "context", None)
    return f"{where}: invalid YAML: {problem}" + (f" ({context})" if context else "")


def validation_error(path: str | None, exc: ValidationError, tree: yaml.Node | None) -> str:
    """One line per problem (pydantic reports each union branch; keep the most telling)."""
    lines: list[str] = []
    for error in _distinct(exc.errors(include_url=False)):
        loc = [part for part in error["loc"] if not _is_branch_label(part)]
        if error["type"] == "union_tag_invalid":
            loc.append("provider")  # the line to fix is the provider's, not the entry's first
        field = _dotted(loc)
        line = _line_of(tree, loc)
        where = path or "(defaults)"
        if line is not None:
            where += f", line {line}"
        lines.append(f"{where}: {field + ': ' if field else ''}{_words(error)}")
    return "\n".join(lines)


def _distinct(errors: list[ErrorDetails]) -> list[ErrorDetails]:
    seen: set[tuple[Any, ...]] = set()
    out: list[ErrorDetails] = []
    for error in errors:
        key = tuple(part for part in error["loc"] if not _is_branch_label(part))
        if key in seen:
            continue
        seen.add(key)
        out.append(error)
    return out


def _is_branch_label(part: int | str) -> bool:
    # discriminated-union branches appear in the location as their tag ("local", "openai"...)
    return isinstance(part, str) and part in {*PROVIDER_NAMES, "model-with-deployments"}


def _dotted(loc: list[int | str]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _words(error: ErrorDetails) -> str:
    kind = error["type"]
    if kind == "missing":
        return "is required but missing"
    if kind == "extra_forbidden":
        return f"unknown setting (remove it or check its spelling; got {error.get('input')!r})"
    if kind == "union_tag_invalid":
        tag = str((error.get("ctx") or {}).get("tag"))
        close = difflib.get_close_matches(tag, PROVIDER_NAMES, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"unknown provider {tag!r}{hint}; use one of {_quoted(PROVIDER_NAMES)}"
    if kind == "union_tag_not_found":
        top_level = len(error["loc"]) == 2  # models[i]: a model entry, which may list deployments instead
        either = " or a list of `deployments:`" if top_level else ""
        return f"says no `provider:` (one of {_quoted(PROVIDER_NAMES)}){either}"
    message = error["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    return f"{message} (got {error.get('input')!r})" if kind.endswith(("_type", "_parsing")) else message


def _quoted(names: tuple[str, ...]) -> str:
    return ", ".join(repr(name) for name in names)


def _line_of(tree: yaml.Node | None, loc: list[int | str]) -> int | None:
    """The 1-based line of the deepest YAML node the location reaches."""
    node = tree
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            child = next((value for key, value in node.value if getattr(key, "value", None) == part), None)
            if child is None:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            child = node.value[part]
        if child is None:
            return line
        node = child
        line = node.start_mark.line + 1
    return line
