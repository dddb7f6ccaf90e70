"""JSON Schema -> Gemini's OpenAPI subset: everything Gemini rejects is gone, nothing the model
needs is lost, and what the subset cannot say is reported rather than dropped."""

from __future__ import annotations

from typing import Any

import pytest

from sluicegate.providers.gemini.schema import Unrepresentable, is_empty_object, to_gemini_schema

# what Gemini's Schema accepts (ai.google.dev/api/caching#Schema), and no more
ALLOWED = {
    "type",
    "format",
    "title",
    "description",
    "nullable",
    "enum",
    "maxItems",
    "minItems",
    "properties",
    "required",
    "minProperties",
    "maxProperties",
    "minLength",
    "maxLength",
    "pattern",
    "example",
    "anyOf",
    "propertyOrdering",
    "default",
    "items",
    "minimum",
    "maximum",
}
TYPES = {"STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT", "NULL"}


def assert_gemini_subset(node: Any) -> None:
    """Walks a converted schema and fails on anything Gemini would reject."""
    assert isinstance(node, dict)
    assert set(node) <= ALLOWED, set(node) - ALLOWED
    assert "type" in node or "anyOf" in node
    if "type" in node:
        assert node["type"] in TYPES
    if "enum" in node:
        assert node["type"] == "STRING" and all(isinstance(v, str) for v in node["enum"])
    if "format" in node:
        assert (
            node["format"]
            in {
                "STRING": {"enum", "date-time"},
                "NUMBER": {"float", "double"},
                "INTEGER": {"int32", "int64"},
            }[node["type"]]
        )
    if node.get("type") == "OBJECT" and "anyOf" not in node:
        assert node["properties"], "Gemini wants properties on an OBJECT"
    for name in node.get("required", []):
        assert name in node["properties"]
    for child in node.get("properties", {}).values():
        assert_gemini_subset(child)
    for child in node.get("anyOf", []):
        assert_gemini_subset(child)
    if "items" in node:
        assert_gemini_subset(node["items"])


PYDANTIC_LIKE: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "Order",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "city": {"type": "string", "format": "uri", "examples": ["https://x"], "default": "Paris"},
        "unit": {"enum": ["c", "f"]},
        "when": {"type": ["string", "null"], "format": "date-time"},
        "count": {"type": "integer", "enum": [1, 2, 3], "exclusiveMinimum": 0, "multipleOf": 1},
        "ratio": {"type": "number", "exclusiveMaximum": 1.5},
        "tags": {"type": "array", "items": {"$ref": "#/$defs/Tag"}, "uniqueItems": True},
        "maybe": {"anyOf": [{"$ref": "#/$defs/Tag"}, {"type": "null"}], "description": "optional tag"},
        "kind": {"const": "order"},
        "either": {"oneOf": [{"type": "string"}, {"type": "number"}]},
        "merged": {"allOf": [{"$ref": "#/definitions/Base"}, {"properties": {"flag": {"type": "boolean"}}}]},
        "pair": {"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}]},
        "strict_map": {
            "type": "object",
            "properties": {"a": {"type": "string"}},
            "propertyNames": {"pattern": "^a"},
        },
    },
    "required": ["city", "not_a_property"],
    "$defs": {
        "Tag": {
            "type": "object",
            "properties": {"name": {"type": "string"}},
            "required": ["name"],
            "additionalProperties": False,
        }
    },
    "definitions": {"Base": {"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]}},
}


def test_a_realistic_schema_comes_out_inside_geminis_subset() -> None:
    out = to_gemini_schema(PYDANTIC_LIKE)
    assert_gemini_subset(out)
    props = out["properties"]
    assert list(props) == list(PYDANTIC_LIKE["properties"])
    assert out["required"] == ["city"]
    assert props["city"] == {"type": "STRING", "default": "Paris"}  # format uri dropped
    assert props["unit"] == {"type": "STRING", "enum": ["c", "f"]}
    assert props["when"] == {"type": "STRING", "format": "date-time", "nullable": True}
    assert props["count"] == {"type": "INTEGER", "minimum": 1, "description": "Allowed values: 1, 2, 3."}
    assert props["ratio"] == {"type": "NUMBER", "maximum": 1.5}
    tag = {"type": "OBJECT", "properties": {"name": {"type": "STRING"}}, "required": ["name"]}
    assert props["tags"] == {"type": "ARRAY", "items": tag}
    assert props["maybe"] == {**tag, "description": "optional tag", "nullable": True}
    assert props["kind"] == {"type": "STRING", "enum": ["order"]}
    assert props["either"] == {"anyOf": [{"type": "STRING"}, {"type": "NUMBER"}]}
    assert props["merged"]["properties"] == {"id": {"type": "STRING"}, "flag": {"type": "BOOLEAN"}}
    assert props["merged"]["required"] == ["id"]
    assert props["pair"]["items"] == {"anyOf": [{"type": "STRING"}, {"type": "INTEGER"}]}


def test_a_ref_with_sibling_keywords_keeps_them() -> None:
    schema = {
        "type": "object",
        "properties": {"t": {"$ref": "#/$defs/T", "description": "the t"}},
        "$defs": {"T": {"type": "string", "description": "plain"}},
    }
    assert to_gemini_schema(schema)["properties"]["t"] == {"type": "STRING", "description": "the t"}


def test_the_same_definition_used_twice_is_inlined_twice() -> None:
    schema = {
        "type": "object",
        "properties": {"a": {"$ref": "#/$defs/T"}, "b": {"$ref": "#/$defs/T"}},
        "$defs": {"T": {"type": "integer"}},
    }
    assert to_gemini_schema(schema)["properties"] == {"a": {"type": "INTEGER"}, "b": {"type": "INTEGER"}}


def test_several_types_become_any_of_and_null_becomes_nullable() -> None:
    out = to_gemini_schema({"type": ["string", "integer", "null"], "description": "id"})
    assert out == {"anyOf": [{"type": "STRING"}, {"type": "INTEGER"}], "description": "id", "nullable": True}


def test_enum_with_null_is_a_nullable_string_enum() -> None:
    assert to_gemini_schema({"type": "string", "enum": ["a", None]}) == {
        "type": "STRING",
        "enum": ["a"],
        "nullable": True,
    }


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "properties": {"child": {"$ref": "#"}}},
        {
            "$defs": {"N": {"type": "object", "properties": {"next": {"$ref": "#/$defs/N"}}}},
            "$ref": "#/$defs/N",
        },
        {"type": "object", "properties": {"meta": {"type": "object"}}},
        {
            "type": "object",
            "properties": {"meta": {"type": "object", "additionalProperties": {"type": "string"}}},
        },
        {"type": "object", "properties": {"anything": {}}},
        {"type": "object", "properties": {"list": {"type": "array"}}},
        {"type": "object", "properties": {"x": {"$ref": "https://example.com/schema"}}},
        {"type": "object", "properties": {"x": {"$ref": "#/$defs/missing"}}},
    ],
    ids=[
        "recursive-root",
        "recursive-def",
        "free-object",
        "map",
        "any",
        "untyped-array",
        "remote-ref",
        "dangling-ref",
    ],
)
def test_what_the_subset_cannot_say_is_reported(schema: dict[str, Any]) -> None:
    with pytest.raises(Unrepresentable):
        to_gemini_schema(schema)


@pytest.mark.parametrize(
    ("schema", "empty"),
    [
        ({"type": "object", "properties": {}}, True),
        ({"type": "object"}, True),
        ({"type": "object", "properties": {}, "additionalProperties": False}, True),
        ({}, True),
        ({"type": "object", "additionalProperties": True}, False),
        ({"type": "object", "properties": {"a": {"type": "string"}}}, False),
    ],
)
def test_a_function_without_parameters_is_recognised(schema: dict[str, Any], empty: bool) -> None:
    assert is_empty_object(schema) is empty


def test_the_input_is_not_modified() -> None:
    import copy

    before = copy.deepcopy(PYDANTIC_LIKE)
    to_gemini_schema(PYDANTIC_LIKE)
    assert before == PYDANTIC_LIKE
