"""The tool-call grammar and the calls read back from it, without a model: every sentence is
calls of the offered tools with arguments their own schemas accept (local `$ref`s included),
and an answer cut anywhere still reads as at least one call of an offered tool."""

from __future__ import annotations

import json
import random
from typing import Any

import jsonschema
from openai.lib._pydantic import to_strict_json_schema
from pydantic import BaseModel

from sluicegate.core.request import ChatRequest
from sluicegate.providers.local.grammar import calls_gbnf, response_gbnf
from sluicegate.providers.local.tools import cut_calls, parse_calls, plan_tools
from tests.support.gbnf_sampler import Sampler


class Location(BaseModel):
    city: str
    country: str


class Trip(BaseModel):
    start: Location
    stops: list[Location]


def request(tools: list[dict[str, Any]], **fields: Any) -> ChatRequest:
    return ChatRequest(model="m", messages=[{"role": "user", "content": "hi"}], raw={}, tools=tools, **fields)


def function(name: str, parameters: Any) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "parameters": parameters}}


TOOLS = [
    function("plan_trip", Trip.model_json_schema()),  # `#/$defs/Location` inside one tool's parameters
    function("plan_strict", to_strict_json_schema(Trip)),
    function("annotate", {"type": "object", "properties": {"note": {"description": "no type"}}, "required": ["note"]}),
    function("now", None),
]


def test_every_call_is_an_offered_tool_with_arguments_its_schema_accepts() -> None:
    plan = plan_tools(request(TOOLS, tool_choice="required"))
    assert plan is not None
    grammar = calls_gbnf(plan)
    assert grammar is not None
    schemas = {tool["name"]: tool["parameters"] for tool in plan.tools}
    seen = set()
    for seed in range(60):
        text = Sampler(grammar, random.Random(seed)).sentence()
        for name, arguments in parse_calls(text):
            jsonschema.validate(json.loads(arguments), schemas[name])
            seen.add(name)
    assert seen == set(schemas)


def test_one_call_only_when_parallel_calls_are_off() -> None:
    plan = plan_tools(request(TOOLS, tool_choice="required", parallel_tool_calls=False))
    assert plan is not None
    grammar = calls_gbnf(plan)
    assert grammar is not None
    for seed in range(20):
        assert len(parse_calls(Sampler(grammar, random.Random(seed)).sentence())) == 1


def test_an_answer_cut_anywhere_is_still_a_call_of_an_offered_tool() -> None:
    plan = plan_tools(request(TOOLS, tool_choice="required"))
    assert plan is not None
    grammar = calls_gbnf(plan)
    assert grammar is not None
    for seed in range(20):
        text = Sampler(grammar, random.Random(seed)).sentence()
        whole = parse_calls(text)
        for end in range(len(text)):
            calls = cut_calls(text[:end], plan.names)
            assert calls and all(name in plan.names for name, _ in calls)
            assert len(calls) <= len(whole) and calls[:-1] == whole[: len(calls) - 1]
            if text[:end].count('"arguments"') == len(calls):  # the last call's name is whole
                assert calls[-1][0] == whole[len(calls) - 1][0]
                assert whole[len(calls) - 1][1].startswith(calls[-1][1].replace(" ", "")[:1])
        assert cut_calls(text, plan.names) == whole


def test_a_named_call_cut_before_its_name_is_that_call() -> None:
    plan = plan_tools(request(TOOLS, tool_choice={"type": "function", "function": {"name": "annotate"}}))
    assert plan is not None
    assert cut_calls("", plan.names) == [("annotate", "")]
    assert cut_calls('[{"na', plan.names) == [("annotate", "")]
    assert cut_calls('[{"name": "annotate", "arguments": {"note": "ab', plan.names) == [("annotate", '{"note": "ab')]


def test_json_mode_writes_an_object() -> None:
    grammar = response_gbnf({"type": "json_object"})
    assert grammar is not None
    for seed in range(20):
        assert isinstance(json.loads(Sampler(grammar, random.Random(seed)).sentence()), dict)
