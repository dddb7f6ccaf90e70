"""JSON Schema (what OpenAI clients send for tools and structured output) -> the OpenAPI 3.0
subset Gemini's `Schema` accepts.

Gemini rejects the whole request over one keyword it does not know (`additionalProperties`,
`$schema`, `exclusiveMinimum`, `propertyNames`...), an `enum` on anything but a string, a
string `format` other than `enum` / `date-time`, and a `required` name that is not a property.
So the schema is rebuilt from the keywords Gemini knows rather than filtered: `$ref`s are
inlined from `$defs` / `definitions`, `allOf` is merged, `oneOf` becomes `anyOf`, a `null`
type or branch becomes `nullable`, a `const` an `enum`, non-string enums move into the
description, type names are upper-cased.

What the subset cannot say at all (a recursive `$ref`, a free-form object with no properties)
raises `Unrepresentable`: the caller then sends the schema as it came in Gemini's JSON Schema
field (`parametersJsonSchema` / `responseJsonSchema`) instead of dropping it.
"""

from __future__ import annotations

from typing import Any

import orjson

_TYPES = {
    "string": "STRING",
    "number": "NUMBER",
    "integer": "INTEGER",
    "boolean": "BOOLEAN",
    "array": "ARRAY",
    "object": "OBJECT",
    "null": "NULL",
}
_FORMATS = {
    "STRING": frozenset({"enum", "date-time"}),
    "NUMBER": frozenset({"float", "double"}),
    "INTEGER": frozenset({"int32", "int64"}),
}
_COPIED = (
    "title",
    "description",
    "minItems",
    "maxItems",
    "minLength",
    "maxLength",
    "minProperties",
    "maxProperties",
    "minimum",
    "maximum",
    "pattern",
    "default",
    "example",
    "propertyOrdering",
)

_SHARED = frozenset({"type", "anyOf", "oneOf", "title", "description", "default", "example", "nullable"})


class Unrepresentable(ValueError):
    """The schema says something Gemini's OpenAPI subset cannot."""


def is_empty_object(schema: Any) -> bool:
    """`{"type": "object"}` with no properties and no free-form extras: a function with no
    parameters, which Gemini wants stated by leaving `parameters` out."""
    if not isinstance(schema, dict) or not schema:
        return True
    extras = schema.get("additionalProperties")
    return (
        schema.get("type") in ("object", None)
        and not schema.get("properties")
        and extras in (None, False)
        and not any(key in schema for key in ("anyOf", "oneOf", "allOf", "$ref", "items", "enum"))
    )


def to_gemini_schema(schema: dict[str, Any]) -> dict[str, Any]:
    return _Converter(schema).convert(schema, ())


class _Converter:
    def __init__(self, root: dict[str, Any]) -> None:
        self.root = root

    def convert(self, node: Any, refs: tuple[str, ...]) -> dict[str, Any]:
        if node is True or node == {}:
            raise Unrepresentable("a schema that accepts any value")
        if not isinstance(node, dict):
            raise Unrepresentable(f"a schema that is not an object: {node!r}")
        if "$ref" in node:
            node, refs = self._resolve(node, refs)
        if "allOf" in node:
            node, refs = self._merge_all_of(node, refs)
        out: dict[str, Any] = {key: node[key] for key in _COPIED if key in node}
        nullable = node.get("nullable") is True
        kind = self._type(node, out, refs)
        nullable = nullable or kind == "nullable"
        self._enum(node, out)
        self._bounds(node, out)
        gemini_type = out.get("type")
        fmt = node.get("format")
        if isinstance(fmt, str) and isinstance(gemini_type, str) and fmt in _FORMATS.get(gemini_type, ()):
            out["format"] = fmt
        if gemini_type == "OBJECT" or "properties" in node:
            self._object(node, out, refs)
        if gemini_type == "ARRAY" or "items" in node or "prefixItems" in node:
            self._array(node, out, refs)
        branches = node.get("anyOf", node.get("oneOf"))
        if isinstance(branches, list):
            nullable = self._any_of(branches, out, refs) or nullable
        if nullable:
            out["nullable"] = True
        if "type" not in out and "anyOf" not in out:
            raise Unrepresentable("a value of any type")
        return out

    def _resolve(self, node: dict[str, Any], refs: tuple[str, ...]) -> tuple[dict[str, Any], tuple[str, ...]]:
        """The schema a `$ref` points to, its sibling keywords on top, and the refs followed
        so far (to tell recursion, which no amount of inlining ends)."""
        ref = node["$ref"]
        if not isinstance(ref, str) or not ref.startswith("#"):
            raise Unrepresentable(f"a $ref outside the schema: {ref!r}")
        if ref in refs:
            raise Unrepresentable(f"a recursive $ref: {ref}")
        target: Any = self.root
        for token in ref[1:].split("/")[1:] if ref != "#" else ():
            token = token.replace("~1", "/").replace("~0", "~")
            if isinstance(target, dict) and token in target:
                target = target[token]
            elif isinstance(target, list) and token.isdigit() and int(token) < len(target):
                target = target[int(token)]
            else:
                raise Unrepresentable(f"a $ref to nothing: {ref}")
        if not isinstance(target, dict):
            raise Unrepresentable(f"a $ref to something that is not a schema: {ref}")
        siblings = {key: value for key, value in node.items() if key != "$ref"}
        resolved = {**target, **siblings}
        if "$ref" in target:
            return self._resolve(resolved, (*refs, ref))
        return resolved, (*refs, ref)

    def _merge_all_of(
        self, node: dict[str, Any], refs: tuple[str, ...]
    ) -> tuple[dict[str, Any], tuple[str, ...]]:
        """`allOf` folded into one schema: properties and required names united, the first
        word on anything else wins (Gemini has no `allOf`)."""
        merged: dict[str, Any] = {key: value for key, value in node.items() if key != "allOf"}
        for part in node["allOf"] if isinstance(node["allOf"], list) else ():
            if not isinstance(part, dict):
                continue
            if "$ref" in part:
                part, refs = self._resolve(part, refs)
            if "allOf" in part:
                part, refs = self._merge_all_of(part, refs)
            for key, value in part.items():
                if key == "properties" and isinstance(value, dict):
                    known = merged.get("properties") or {}
                    merged["properties"] = {**known, **{k: v for k, v in value.items() if k not in known}}
                elif key == "required" and isinstance(value, list):
                    merged["required"] = [*(merged.get("required") or []), *value]
                else:
                    merged.setdefault(key, value)
        return merged, refs

    def _type(self, node: dict[str, Any], out: dict[str, Any], refs: tuple[str, ...]) -> str | None:
        raw = node.get("type")
        names = raw if isinstance(raw, list) else [raw] if isinstance(raw, str) else []
        known = [name for name in names if name in _TYPES]
        nullable = "null" in known and len(known) > 1
        kinds = [_TYPES[name] for name in known if name != "null" or not nullable]
        if len(kinds) == 1:
            out["type"] = kinds[0]
        elif len(kinds) > 1:
            # one branch per type, each with the keywords about values (bounds, items...);
            # the words about the whole (title, description...) stay on top
            rest = {key: value for key, value in node.items() if key not in _SHARED}
            out["anyOf"] = [self.convert({**rest, "type": name.lower()}, refs) for name in kinds]
            for key in _COPIED:
                if key not in _SHARED:
                    out.pop(key, None)
        elif "enum" in node or "const" in node:
            enum = node.get("enum")
            values: list[Any] = enum if isinstance(enum, list) else [node.get("const")]
            if all(isinstance(value, str) or value is None for value in values):
                out["type"] = "STRING"
        elif "properties" in node:
            out["type"] = "OBJECT"
        elif "items" in node:
            out["type"] = "ARRAY"
        return "nullable" if nullable else None

    def _enum(self, node: dict[str, Any], out: dict[str, Any]) -> None:
        if "enum" in node and isinstance(node["enum"], list):
            values = list(node["enum"])
        elif "const" in node:
            values = [node["const"]]
        else:
            return
        if None in values:
            out["nullable"] = True
            values = [value for value in values if value is not None]
        if out.get("type") == "STRING" and all(isinstance(value, str) for value in values):
            out["enum"] = values
            return
        # Gemini takes enums on strings only: say it in words rather than change the type
        allowed = ", ".join(orjson.dumps(value).decode() for value in values)
        note = f"Allowed values: {allowed}."
        out["description"] = f"{out['description']} {note}" if out.get("description") else note

    @staticmethod
    def _bounds(node: dict[str, Any], out: dict[str, Any]) -> None:
        """Draft 6+ exclusive bounds as the nearest inclusive ones Gemini knows."""
        integer = out.get("type") == "INTEGER"
        for exclusive, inclusive, step in (
            ("exclusiveMinimum", "minimum", 1),
            ("exclusiveMaximum", "maximum", -1),
        ):
            value = node.get(exclusive)
            if isinstance(value, int | float) and not isinstance(value, bool) and inclusive not in out:
                out[inclusive] = value + step if integer and isinstance(value, int) else value

    def _object(self, node: dict[str, Any], out: dict[str, Any], refs: tuple[str, ...]) -> None:
        properties = node.get("properties")
        if not isinstance(properties, dict) or not properties:
            if "anyOf" in node or "oneOf" in node:
                return
            raise Unrepresentable("an object with no declared properties")
        out["properties"] = {name: self.convert(value, refs) for name, value in properties.items()}
        required = node.get("required")
        if isinstance(required, list):
            kept = [name for name in required if isinstance(name, str) and name in properties]
            if kept:
                out["required"] = kept

    def _array(self, node: dict[str, Any], out: dict[str, Any], refs: tuple[str, ...]) -> None:
        items = node.get("items", node.get("prefixItems"))
        if isinstance(items, list):  # a tuple: each position's schema, as alternatives
            converted = [self.convert(item, refs) for item in items]
            if len(converted) == 1:
                out["items"] = converted[0]
            elif converted:
                out["items"] = {"anyOf": converted}
        elif isinstance(items, dict):
            out["items"] = self.convert(items, refs)
        elif items is None or items is True:
            raise Unrepresentable("an array whose items may be anything")

    def _any_of(self, branches: list[Any], out: dict[str, Any], refs: tuple[str, ...]) -> bool:
        """The branches, or the one left after a `null` branch became `nullable`."""
        non_null = [b for b in branches if not (isinstance(b, dict) and b.get("type") == "null")]
        nullable = len(non_null) < len(branches)
        converted = [self.convert(branch, refs) for branch in non_null]
        if len(converted) == 1:
            for key, value in converted[0].items():
                out.setdefault(key, value)
        elif converted:
            out["anyOf"] = converted
        return nullable
