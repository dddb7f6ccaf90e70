"""A Responses body -> the canonical chat request: items to messages, tools, formats, and the
400s (with `param` naming the exact field) for what is malformed or not supported."""

from __future__ import annotations

from typing import Any

import pytest

from sluicegate.api.responses.request import parse_responses_request
from sluicegate.errors import InvalidRequestError

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    "strict": True,
}


def chat(history: list[dict[str, Any]] | None = None, **body: Any) -> Any:
    return parse_responses_request({"model": "m", **body}).chat_request(history or [])


def test_a_string_input_is_one_user_message() -> None:
    request = chat(input="Hello", instructions="Be brief.", max_output_tokens=50, temperature=0.2, top_p=0.9)
    assert request.messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hello"},
    ]
    assert request.wire_format == "openai_responses" and request.raw["input"] == "Hello"
    assert (request.max_tokens, request.temperature, request.top_p) == (50, 0.2, 0.9)
    assert request.include_usage and not request.stream
    assert request.tools is None and request.tool_choice is None and request.parallel_tool_calls is None


def test_message_items_become_chat_messages() -> None:
    request = chat(
        input=[
            {"role": "developer", "content": "Answer in French."},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "What is this?"}]},
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "Look:"},
                    {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "low"},
                ],
            },
            {
                "role": "assistant",
                "content": [{"type": "output_text", "text": "Un chat.", "annotations": []}],
            },
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {"role": "system", "content": "Stay polite."},
        ]
    )
    assert request.messages == [
        {"role": "developer", "content": "Answer in French."},
        {"role": "user", "content": "What is this?"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Look:"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}},
            ],
        },
        {"role": "assistant", "content": "Un chat."},
        {"role": "system", "content": "Stay polite."},
    ]


def test_function_calls_and_their_outputs_become_tool_calls_and_tool_messages() -> None:
    request = chat(
        input=[
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {"role": "assistant", "content": "Checking."},
            {
                "type": "function_call",
                "call_id": "call_1",
                "name": "get_weather",
                "arguments": '{"city":"Paris"}',
            },
            {
                "type": "function_call",
                "call_id": "call_2",
                "name": "get_weather",
                "arguments": '{"city":"Rome"}',
            },
            {"type": "function_call_output", "call_id": "call_1", "output": "18C"},
            {
                "type": "function_call_output",
                "call_id": "call_2",
                "output": [{"type": "input_text", "text": "21C"}],
            },
        ],
        tools=[WEATHER],
    )
    calls = [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
        },
        {
            "id": "call_2",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
        },
    ]
    assert request.messages[1:] == [
        {"role": "assistant", "content": "Checking.", "tool_calls": calls},
        {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
        {"role": "tool", "tool_call_id": "call_2", "content": "21C"},
    ]
    lone = chat(
        input=[
            {"role": "user", "content": "Go"},
            {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
        ]
    )
    assert lone.messages[1] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
    }


def test_a_stored_conversation_leads_the_new_input_and_instructions_lead_all() -> None:
    history = [
        {
            "id": "msg_1",
            "type": "message",
            "role": "user",
            "status": "completed",
            "content": [{"type": "input_text", "text": "Hi"}],
        },
        {
            "id": "msg_2",
            "type": "message",
            "role": "assistant",
            "status": "completed",
            "content": [
                {"type": "output_text", "text": "Hello!", "annotations": [], "logprobs": []},
                {"type": "refusal", "refusal": "But not that."},
            ],
        },
        {
            "id": "fc_1",
            "type": "function_call",
            "status": "completed",
            "call_id": "call_9",
            "name": "f",
            "arguments": "{}",
        },
    ]
    request = chat(
        history,
        input=[{"type": "function_call_output", "call_id": "call_9", "output": "ok"}],
        instructions="New rules.",
    )
    assert request.messages == [
        {"role": "system", "content": "New rules."},
        {"role": "user", "content": "Hi"},
        {
            "role": "assistant",
            "content": "Hello!",
            "refusal": "But not that.",
            "tool_calls": [
                {"id": "call_9", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_9", "content": "ok"},
    ]


def test_input_items_are_normalised_with_ids_for_storage() -> None:
    parsed = parse_responses_request(
        {
            "model": "m",
            "input": [
                {"role": "user", "content": "Hi"},
                {"type": "function_call_output", "call_id": "c", "output": "x"},
            ],
        }
    )
    message, output = parsed.input_items
    assert message["id"].startswith("msg_") and message["status"] == "completed"
    assert message["content"] == [{"type": "input_text", "text": "Hi"}]
    assert output["id"].startswith("fco_") and output["call_id"] == "c" and output["output"] == "x"
    assert parse_responses_request({"model": "m", "input": "Hi"}).input_items[0]["role"] == "user"


def test_function_tools_and_tool_choice_map_to_chat_tools() -> None:
    request = chat(
        input="x",
        tools=[WEATHER],
        tool_choice={"type": "function", "name": "get_weather"},
        parallel_tool_calls=False,
    )
    assert request.tools == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather in a city",
                "parameters": WEATHER["parameters"],
                "strict": True,
            },
        }
    ]
    assert request.tool_choice == {"type": "function", "function": {"name": "get_weather"}}
    assert request.parallel_tool_calls is False
    assert chat(input="x", tools=[WEATHER], tool_choice="required").tool_choice == "required"
    allowed = chat(
        input="x",
        tools=[WEATHER],
        tool_choice={
            "type": "allowed_tools",
            "mode": "required",
            "tools": [{"type": "function", "name": "get_weather"}],
        },
    )
    assert allowed.tool_choice == {
        "type": "allowed_tools",
        "allowed_tools": {
            "mode": "required",
            "tools": [{"type": "function", "function": {"name": "get_weather"}}],
        },
    }
    minimal = chat(input="x", tools=[{"type": "function", "name": "ping"}])
    assert minimal.tools == [{"type": "function", "function": {"name": "ping"}}]
    assert minimal.tool_choice is None  # the upstream's default, as OpenAI's is auto


def test_text_format_becomes_response_format_and_reasoning_effort_passes() -> None:
    schema = {
        "type": "object",
        "properties": {"a": {"type": "integer"}},
        "required": ["a"],
        "additionalProperties": False,
    }
    request = chat(
        input="x",
        text={"format": {"type": "json_schema", "name": "thing", "schema": schema, "strict": True}},
        reasoning={"effort": "low", "summary": "auto"},
    )
    assert request.response_format == {
        "type": "json_schema",
        "json_schema": {"name": "thing", "schema": schema, "strict": True},
    }
    assert request.reasoning_effort == "low"
    assert chat(input="x", text={"format": {"type": "json_object"}}).response_format == {
        "type": "json_object"
    }
    assert chat(input="x", text={"format": {"type": "text"}}).response_format is None


def test_logprobs_come_with_the_include_flag() -> None:
    assert not chat(input="x", top_logprobs=3).logprobs
    request = chat(input="x", include=["message.output_text.logprobs"], top_logprobs=3)
    assert request.logprobs and request.top_logprobs == 3


BAD: dict[str, tuple[dict[str, Any], str | None, str | None]] = {
    "no model": ({"input": "x"}, "model", "missing_required_parameter"),
    "model number": ({"model": 3, "input": "x"}, "model", "invalid_type"),
    "no input": ({"model": "m"}, "input", "missing_required_parameter"),
    "input number": ({"model": "m", "input": 5}, "input", "invalid_type"),
    "item not object": ({"model": "m", "input": ["hi"]}, "input[0]", "invalid_type"),
    "bad role": (
        {"model": "m", "input": [{"role": "tool", "content": "x"}]},
        "input[0].role",
        "invalid_value",
    ),
    "no content": (
        {"model": "m", "input": [{"role": "user"}]},
        "input[0].content",
        "missing_required_parameter",
    ),
    "bad part": (
        {"model": "m", "input": [{"role": "user", "content": [{"type": "output_text", "text": "x"}]}]},
        "input[0].content[0].type",
        "invalid_value",
    ),
    "file part": (
        {"model": "m", "input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]},
        "input[0].content[0].type",
        "unsupported_parameter",
    ),
    "image by file id": (
        {"model": "m", "input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]},
        "input[0].content[0].file_id",
        "unsupported_parameter",
    ),
    "built-in tool call item": (
        {"model": "m", "input": [{"type": "web_search_call", "id": "ws", "status": "completed"}]},
        "input[0].type",
        "unsupported_parameter",
    ),
    "item reference": (
        {"model": "m", "input": [{"type": "item_reference", "id": "msg_1"}]},
        "input[0].type",
        "unsupported_parameter",
    ),
    "call without call_id": (
        {"model": "m", "input": [{"type": "function_call", "name": "f", "arguments": "{}"}]},
        "input[0].call_id",
        "missing_required_parameter",
    ),
    "output not text": (
        {
            "model": "m",
            "input": [{"type": "function_call_output", "call_id": "c", "output": [{"type": "input_image"}]}],
        },
        "input[0].output[0]",
        "unsupported_parameter",
    ),
    "client-run tool of its own type": (
        {"model": "m", "input": "x", "tools": [{"type": "local_shell"}]},
        "tools[0].type",
        "unsupported_parameter",
    ),
    "tool without name": (
        {"model": "m", "input": "x", "tools": [{"type": "function"}]},
        "tools[0].name",
        "missing_required_parameter",
    ),
    "tool parameters list": (
        {"model": "m", "input": "x", "tools": [{"type": "function", "name": "f", "parameters": []}]},
        "tools[0].parameters",
        "invalid_type",
    ),
    "tool choice hosted": (
        {"model": "m", "input": "x", "tool_choice": {"type": "file_search"}},
        "tool_choice.type",
        "unsupported_parameter",
    ),
    "tool choice word": (
        {"model": "m", "input": "x", "tool_choice": "always"},
        "tool_choice",
        "invalid_value",
    ),
    "temperature high": ({"model": "m", "input": "x", "temperature": 2.5}, "temperature", "invalid_value"),
    "temperature text": ({"model": "m", "input": "x", "temperature": "hot"}, "temperature", "invalid_type"),
    "top_p bool": ({"model": "m", "input": "x", "top_p": True}, "top_p", "invalid_type"),
    "max_output_tokens zero": (
        {"model": "m", "input": "x", "max_output_tokens": 0},
        "max_output_tokens",
        "invalid_value",
    ),
    "stream text": ({"model": "m", "input": "x", "stream": "yes"}, "stream", "invalid_type"),
    "store number": ({"model": "m", "input": "x", "store": 1}, "store", "invalid_type"),
    "schema missing": (
        {"model": "m", "input": "x", "text": {"format": {"type": "json_schema", "name": "a"}}},
        "text.format.schema",
        "missing_required_parameter",
    ),
    "format unknown": (
        {"model": "m", "input": "x", "text": {"format": {"type": "xml"}}},
        "text.format.type",
        "invalid_value",
    ),
    "effort unknown": (
        {"model": "m", "input": "x", "reasoning": {"effort": "max"}},
        "reasoning.effort",
        "invalid_value",
    ),
    "metadata value": ({"model": "m", "input": "x", "metadata": {"a": 1}}, "metadata.a", "invalid_value"),
    "background without store": (
        {"model": "m", "input": "x", "background": True, "store": False},
        "background",
        "invalid_value",
    ),
    "conversation": (
        {"model": "m", "input": "x", "conversation": "conv_1"},
        "conversation",
        "unsupported_parameter",
    ),
    "previous id number": (
        {"model": "m", "input": "x", "previous_response_id": 7},
        "previous_response_id",
        "invalid_type",
    ),
    "not an object": ([], None, None),  # type: ignore[dict-item]
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_bodies_are_400s_naming_the_field(case: str) -> None:
    body, param, code = BAD[case]
    with pytest.raises(InvalidRequestError) as caught:
        parse_responses_request(body).chat_request([])
    error = caught.value
    assert error.http_status == 400 and error.message
    assert error.param == param
    assert error.code == code
    assert error.to_dict()["error"]["type"] == "invalid_request_error"
