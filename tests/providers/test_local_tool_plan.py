"""How a request's tools become the embedded model's plan: which tools, whether a call is
forced, the schema its calls are held to, and how the start of a free answer is watched."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from sluicegate.core.request import ChatRequest
from sluicegate.errors import InvalidRequestError
from sluicegate.providers.local.model import logprobs_of
from sluicegate.providers.local.prompt import flatten_messages, with_tools
from sluicegate.providers.local.tools import Opening, ToolPlan, parse_calls, plan_tools, render_calls

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
TIME = {"type": "function", "function": {"name": "get_time"}}


def request(tools: Any = None, tool_choice: Any = None, parallel: bool | None = None) -> ChatRequest:
    return ChatRequest(model="m", messages=[], raw={}, tools=tools, tool_choice=tool_choice, parallel_tool_calls=parallel)


def test_no_tools_or_none_chosen_is_no_plan() -> None:
    assert plan_tools(request()) is None
    assert plan_tools(request([WEATHER], "none")) is None


@pytest.mark.parametrize(
    ("choice", "names", "forced"),
    [
        (None, ["get_weather", "get_time"], False),
        ("auto", ["get_weather", "get_time"], False),
        ("required", ["get_weather", "get_time"], True),
        ({"type": "function", "function": {"name": "get_time"}}, ["get_time"], True),
        (
            {"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": [{"type": "function", "function": {"name": "get_weather"}}]}},
            ["get_weather"],
            False,
        ),
        (
            {"type": "allowed_tools", "allowed_tools": {"mode": "required", "tools": [{"type": "function", "name": "get_time"}]}},
            ["get_time"],
            True,
        ),
    ],
)
def test_the_choice_picks_the_tools_and_whether_a_call_is_forced(choice: Any, names: list[str], forced: bool) -> None:
    plan = plan_tools(request([WEATHER, TIME], choice))
    assert plan is not None
    assert [tool["name"] for tool in plan.tools] == names and plan.forced is forced


@pytest.mark.parametrize(
    ("tools", "choice", "param"),
    [
        ([WEATHER], {"type": "function", "function": {"name": "nope"}}, "tool_choice"),
        ([WEATHER], {"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": []}}, "tool_choice"),
        ([WEATHER], "sometimes", "tool_choice"),
        ([WEATHER], {"type": "function"}, "tool_choice"),
        ([WEATHER], {"type": "function", "function": "get_weather"}, "tool_choice"),
        ([WEATHER], {"type": "allowed_tools", "allowed_tools": "get_weather"}, "tool_choice"),
        ([WEATHER], {"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": [{"function": "x"}, 3]}}, "tool_choice"),
        ([WEATHER], {"type": "allowed_tools"}, "tool_choice"),
        ([{"type": "web_search"}], None, "tools[0]"),
        (None, "required", "tool_choice"),
        ([], {"type": "function", "function": {"name": "f"}}, "tool_choice"),
        ([{"type": "function", "function": {"name": "f", "parameters": "x"}}], None, "tools[0].function.parameters"),
    ],
)
def test_what_cannot_be_planned_is_a_400_naming_the_field(tools: Any, choice: Any, param: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        plan_tools(request(tools, choice))
    assert info.value.param == param


@pytest.mark.parametrize(
    ("parameters", "held"),
    [
        (None, {"type": "object", "properties": {}}),
        ({"type": "object"}, {"type": "object", "properties": {}}),
        ({"type": "object", "additionalProperties": True}, {"type": "object", "additionalProperties": True}),
        ({"type": "object", "properties": {"a": {"type": "string"}}}, {"type": "object", "properties": {"a": {"type": "string"}}}),
    ],
)
def test_a_tool_that_declares_no_properties_takes_none(parameters: Any, held: Any) -> None:
    tool = {"type": "function", "function": {"name": "f", **({} if parameters is None else {"parameters": parameters})}}
    plan = plan_tools(request([tool]))
    assert plan is not None and plan.tools[0]["parameters"] == held


def test_the_instructions_list_the_tools_and_say_whether_text_may_answer() -> None:
    free = ToolPlan(({"name": "get_time", "parameters": {"type": "object"}},), forced=False)
    assert '<tools>[{"name":"get_time","parameters":{"type":"object"}}]</tools>' in free.instructions()
    assert "plain text" in free.instructions()
    assert "plain text" not in ToolPlan(free.tools, forced=True).instructions()


def test_the_tools_follow_the_system_prompt_or_become_it() -> None:
    plan = ToolPlan(({"name": "f", "parameters": {"type": "object"}},), forced=True)
    own = with_tools([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}], plan)
    assert own[0]["content"].startswith("Be brief.\n\nYou have access") and len(own) == 2
    none = with_tools([{"role": "user", "content": "hi"}], plan)
    assert none[0]["role"] == "system" and none[0]["content"] == plan.instructions()
    assert with_tools(none, None) is none


def test_earlier_calls_are_shown_as_the_model_writes_them() -> None:
    history = [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Hue"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "25C"},
    ]  # fmt: skip
    flat = flatten_messages(history, "m")
    assert flat[0] == {"role": "assistant", "content": '<tool_call>[{"name":"get_weather","arguments":{"city":"Hue"}}]</tool_call>'}
    assert flat[1] == {"role": "tool", "content": "25C"}
    assert render_calls([{"function": {"name": "f", "arguments": "not json"}}]) == (
        '<tool_call>[{"name":"f","arguments":"not json"}]</tool_call>'
    )


def test_calls_are_read_back_as_names_and_json_arguments() -> None:
    text = '[{"name": "get_weather", "arguments": {"city": "Hue"}}, {"name": "get_time", "arguments": {}}]'
    calls = parse_calls(text)
    assert calls == [("get_weather", '{"city":"Hue"}'), ("get_time", "{}")]
    assert orjson.loads(calls[0][1]) == {"city": "Hue"}


@pytest.mark.parametrize(
    ("pieces", "released", "opened"),
    [
        (["<tool", "_call>", "["], "", True),
        (["\n", "<tool_", "call>"], "", True),
        (["<", "b>bold"], "<b>bold", False),
        (["The weather", " is"], "The weather is", False),
        (["<tool"], "", False),  # still undecided: held back
        (["Sure! ", "<tool_call>"], "Sure! ", True),
        (["Sure! <tool", "_call>["], "Sure! ", True),
        (["a <tool", " b"], "a <tool b", False),
        (["\n", " "], "", False),  # white space waits for what follows it
    ],
)
def test_a_free_answer_is_held_only_while_it_may_open_a_call(pieces: list[str], released: str, opened: bool) -> None:
    opening = Opening()
    out, did_open = "", False
    for piece in pieces:
        text, now = opening.feed(piece)
        out += text
        did_open = did_open or now
        if now:
            break
    assert (out, did_open) == (released, opened)


def test_an_undecided_start_is_released_at_the_end() -> None:
    opening = Opening()
    assert opening.feed("<tool") == ("", False)
    assert opening.flush() == "<tool"


def test_text_before_a_call_keeps_only_its_own_logprobs() -> None:
    pending = [{"token": "Sure"}, {"token": "!"}, {"token": "<"}, {"token": "tool"}]
    assert logprobs_of(pending, "Sure!") == pending[:2]
    assert logprobs_of(pending, "") == []
