"""JSON Schema -> GBNF, without a model: every sentence of a schema's grammar, drawn at random
on many seeds, is JSON (no raw control characters) that the schema accepts."""

from __future__ import annotations

import json
import random
from enum import StrEnum
from typing import Any, Literal

import jsonschema
import pytest
from openai.lib._pydantic import to_strict_json_schema
from pydantic import BaseModel, Field

from sluicegate.providers.local.gbnf import schema_gbnf
from sluicegate.providers.local.regex_gbnf import PatternUnsupported, pattern_gbnf
from tests.support.gbnf_sampler import Sampler

SEEDS = range(40)


class Location(BaseModel):
    city: str
    country: str | None = None


class Unit(StrEnum):
    celsius = "celsius"
    fahrenheit = "fahrenheit"


class Forecast(BaseModel):
    where: Location
    stops: list[Location] = Field(default_factory=list, max_length=3)
    unit: Unit
    days: int = Field(ge=1, le=7)
    note: str | None = Field(default=None, max_length=12)
    kind: Literal["daily", "hourly"] = "daily"


class Tree(BaseModel):
    label: str
    children: list[Tree] = Field(default_factory=list)


# fmt: off
SCHEMAS: dict[str, Any] = {
    "string": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
    "no type": {
        "type": "object",
        "properties": {"anything": {"description": "a property with annotations and no type"}, "n": {"type": "integer"}},
        "required": ["anything"],
    },
    "defs": {
        "$defs": {"Location": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
        "type": "object",
        "properties": {"from": {"$ref": "#/$defs/Location"}, "to": {"$ref": "#/definitions/Place"}},
        "definitions": {"Place": {"type": "string", "enum": ["a\nb", 'say "hi"', "plain"]}},
        "required": ["from", "to"],
        "additionalProperties": False,
    },
    "recursive": {
        "$defs": {"Node": {"type": "object", "properties": {"v": {"type": "integer"},
                  "next": {"anyOf": [{"$ref": "#/$defs/Node"}, {"type": "null"}]}}, "required": ["v", "next"]}},
        "$ref": "#/$defs/Node",
    },
    "root ref": {"type": "object", "properties": {"kids": {"type": "array", "items": {"$ref": "#"}, "maxItems": 2}}},
    "all of": {
        "allOf": [
            {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
            {"properties": {"b": {"type": "boolean"}}, "required": ["b"]},
        ]
    },
    "one of": {"oneOf": [{"type": "integer", "minimum": 0}, {"type": "string", "maxLength": 3}, {"const": [1, "x"]}]},
    "nullable": {"type": "object", "properties": {"x": {"type": "string", "nullable": True},
                 "y": {"type": ["integer", "null"]}}, "required": ["x", "y"]},
    "map": {"type": "object", "additionalProperties": {"type": "number", "minimum": 0}},
    "closed": {"type": "object", "additionalProperties": False},
    "no arguments": {"type": "object", "properties": {}},
    "any object": {"type": "object"},
    "formats": {
        "type": "object",
        "properties": {f: {"type": "string", "format": f} for f in ("date", "time", "date-time", "uuid", "email", "ipv4")},
        "required": ["date", "time", "date-time", "uuid", "email", "ipv4"],
    },
    "lengths": {"type": "array", "items": {"type": "string", "minLength": 2, "maxLength": 4}, "minItems": 1, "maxItems": 3},
    # minimums above what one repetition may count: held exactly (nested groups), not capped
    "long minimums": {"type": "object", "properties": {"story": {"type": "string", "minLength": 3000},
                      "many": {"type": "array", "items": {"type": "integer"}, "minItems": 300}},
                      "required": ["story", "many"]},
    "tuple": {"type": "array", "prefixItems": [{"type": "integer"}, {"type": "string"}], "items": False},
    "ranges": {"type": "object", "properties": {"small": {"type": "integer", "minimum": -3, "exclusiveMaximum": 4},
               "big": {"type": "integer", "minimum": 10}, "neg": {"type": "integer", "maximum": -1},
               "ratio": {"type": "number", "minimum": 0}, "share": {"type": "number", "exclusiveMinimum": 0},
               "gt": {"type": "integer", "exclusiveMinimum": 0}},
               "required": ["small", "big", "neg", "ratio", "share", "gt"]},
    "patterns": {"type": "object", "properties": {"zip": {"type": "string", "pattern": "^[0-9]{5}(-[0-9]{4})?$"},
                 "code": {"type": "string", "pattern": "[A-Z]+"}, "id": {"type": "string", "pattern": r"^\w+\.\d{2,3}$"},
                 "quote": {"type": "string", "pattern": '^a"b\\\\c.$'}}, "required": ["zip", "code", "id", "quote"]},
    "unsupported pattern": {"type": "string", "pattern": r"^(?=x)\1$"},
    "empty": {},
    "true": True,
    "pydantic": Forecast.model_json_schema(),
    "pydantic strict": to_strict_json_schema(Forecast),
    "pydantic tree": Tree.model_json_schema(),
    "pydantic tree strict": to_strict_json_schema(Tree),
}
# fmt: on
RELAXED = {"unsupported pattern"}  # held only as a plain string
# OpenAPI's `nullable` (Gemini-style schemas) is no JSON Schema keyword: validated as its meaning
VALIDATED_AS = {
    "nullable": {**SCHEMAS["nullable"], "properties": {"x": {"type": ["string", "null"]}, "y": {"type": ["integer", "null"]}}}
}


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_every_sentence_is_json_the_schema_accepts(name: str) -> None:
    schema = SCHEMAS[name]
    grammar = schema_gbnf(schema)
    checker = jsonschema.Draft202012Validator.FORMAT_CHECKER
    for seed in SEEDS:
        text = Sampler(grammar, random.Random(seed)).sentence()
        value = json.loads(text)  # strict: a raw control character in a string fails here
        if name not in RELAXED:
            jsonschema.validate(value, VALIDATED_AS.get(name, schema), format_checker=checker)


def test_strings_hold_no_raw_control_characters() -> None:
    grammar = schema_gbnf({"type": "array", "items": {"type": "string"}, "minItems": 5, "maxItems": 5})
    for seed in SEEDS:
        text = Sampler(grammar, random.Random(seed)).sentence()
        assert not any(ord(c) < 0x20 for c in text), repr(text)


def test_unsupported_patterns_are_named() -> None:
    for pattern in (r"(?=a)", r"\1", r"\b"):
        with pytest.raises(PatternUnsupported):
            pattern_gbnf(pattern)


def test_a_tool_with_no_arguments_takes_only_the_empty_object() -> None:
    grammar = schema_gbnf({"type": "object", "properties": {}})
    assert {Sampler(grammar, random.Random(seed)).sentence().replace(" ", "") for seed in SEEDS} == {"{}"}


def test_llama_cpp_parses_every_grammar() -> None:
    """llama.cpp's own grammar parser takes each (an undefined rule or a syntax slip would be
    refused here, where `LlamaGrammar.from_string` defers the check to generation)."""
    import llama_cpp
    from llama_cpp import Llama

    from sluicegate.providers.local.model import bundled_model_path

    llama = Llama(model_path=str(bundled_model_path()), n_ctx=64, verbose=False, vocab_only=True)
    vocab = llama._model.vocab

    def parses(grammar: str) -> bool:
        sampler = llama_cpp.llama_sampler_init_grammar(vocab, grammar.encode(), b"root")
        if not sampler:
            return False
        llama_cpp.llama_sampler_free(sampler)
        return True

    assert not parses("root ::= undefined-rule")
    for name, schema in SCHEMAS.items():
        assert parses(schema_gbnf(schema)), name
