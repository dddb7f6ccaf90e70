"""Config mistakes in plain words, with the file and line they are on.

pydantic reports a location as a path (`models.0.provider`) in its own wording; an operator
wants "sluicegate.yaml, line 7: models[0].provider: ..." naming the thing to fix. The YAML
node tree gives each path its line.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Iterable, Sequence
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from sluicegate.field_paths import field_names, field_path
from sluicegate.providers.catalog import PROVIDERS

PROVIDER_NAMES = tuple(PROVIDERS)
# discriminated-union branches appear in a location as their tag ("local", "openai"...)
BRANCH_TAGS = frozenset({*PROVIDER_NAMES, "model-with-deployments"})


def yaml_error(path: str, exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    where = f"{path}, line {mark.line + 1}, column {mark.column + 1}" if mark is not None else path
    context = getattr(exc, "context", None)
    return f"{where}: invalid YAML: {problem}" + (f" ({context})" if context else "")


def validation_error(
    path: str | None, exc: ValidationError, tree: yaml.Node | None, schema: type[BaseModel] | None = None
) -> str:
    """One line per problem (pydantic reports each union branch; keep the most telling); an
    unknown setting is compared with the settings `schema` allows where it stands."""
    lines: list[str] = []
    for error in _distinct(exc.errors(include_url=False)):
        loc = field_names(error["loc"], BRANCH_TAGS)
        if error["type"] == "union_tag_invalid":
            loc.append("provider")  # the line to fix is the provider's, not the entry's first
        field = field_path(loc, "config", BRANCH_TAGS)
        line = _line_of(tree, loc)
        where = path or "(defaults)"
        if line is not None:
            where += f", line {line}"
        lines.append(f"{where}: {field + ': ' if field else ''}{_words(error, schema)}")
    return "\n".join(lines)


def _distinct(errors: list[ErrorDetails]) -> list[ErrorDetails]:
    seen: set[tuple[Any, ...]] = set()
    out: list[ErrorDetails] = []
    for error in errors:
        key = tuple(field_names(error["loc"], BRANCH_TAGS))
        if key in seen:
            continue
        seen.add(key)
        out.append(error)
    return out


def _words(error: ErrorDetails, schema: type[BaseModel] | None) -> str:
    kind = error["type"]
    if kind == "missing":
        return "is required but missing"
    if kind == "extra_forbidden":
        key = str(error["loc"][-1])
        setting = _close(key, _settings_at(schema, error["loc"][:-1])) if schema is not None else None
        if setting:
            return f"unknown setting (did you mean {setting!r}?)"
        return f"unknown setting (remove it or check its spelling; got {error.get('input')!r})"
    if kind == "union_tag_invalid":
        tag = str((error.get("ctx") or {}).get("tag"))
        close = difflib.get_close_matches(tag, PROVIDER_NAMES, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"unknown provider {tag!r}{hint}; use one of {_quoted(PROVIDER_NAMES)}"
    if kind == "union_tag_not_found":
        top_level = len(error["loc"]) == 2  # models[i]: a model entry, which may list deployments instead
        either = " or a list of `deployments:`" if top_level else ""
        given = error.get("input")
        misspelt = [key for key in given if _close(str(key), ["provider"])] if isinstance(given, dict) else []
        if misspelt:
            return f"says no `provider:` (`{misspelt[0]}:` is not a setting: did you mean `provider:`?)"
        return f"says no `provider:` (one of {_quoted(PROVIDER_NAMES)}){either}"
    message = error["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    return f"{message} (got {error.get('input')!r})" if kind.endswith(("_type", "_parsing")) else message


def _close(word: str, candidates: Iterable[str]) -> str | None:
    found = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.75)
    return found[0] if found else None


def _settings_at(schema: type[BaseModel], loc: Sequence[int | str]) -> set[str]:
    """The setting names allowed at a location: every model the location may reach (a list's
    items, each member of a union, through the branch tags) contributes its fields."""
    kinds: list[Any] = [schema]
    for part in loc:
        if isinstance(part, str) and part in BRANCH_TAGS:
            continue
        reached: list[Any] = []
        for kind in (member for outer in kinds for member in _members(outer)):
            if isinstance(part, int) and typing.get_origin(kind) is list:
                reached.extend(typing.get_args(kind)[:1])
            elif isinstance(part, str) and isinstance(kind, type) and issubclass(kind, BaseModel):
                field = kind.model_fields.get(part)
                if field is not None:
                    reached.append(field.annotation)
        kinds = reached
    return {
        name
        for kind in (member for outer in kinds for member in _members(outer))
        if isinstance(kind, type) and issubclass(kind, BaseModel)
        for name in kind.model_fields
    }


def _members(kind: Any) -> list[Any]:
    """A type without its `Annotated` wrapper, a union as its members."""
    if typing.get_origin(kind) is typing.Annotated:
        return _members(typing.get_args(kind)[0])
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        return [member for arg in typing.get_args(kind) for member in _members(arg)]
    return [kind]


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
