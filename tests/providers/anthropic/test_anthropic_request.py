"""The OpenAI-vocabulary request -> Anthropic Messages body, mapping by mapping."""

from __future__ import annotations

from typing import Any

import pytest

from sluicegate.core.request import ChatRequest, NativeBody
from sluicegate.errors import InvalidRequestError
from sluicegate.providers.anthropic.request import count_tokens_body, messages_body

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def chat(messages: list[dict[str, Any]] | None = None, **fields: Any) -> ChatRequest:
    messages = messages or [{"role": "user", "content": "Hi"}]
    raw = {"model": "m", "messages": messages, **fields.pop("raw", {})}
    return ChatRequest(model="m", messages=messages, raw=raw, **fields)


def body(request: ChatRequest, stream: bool = False, default_max_tokens: int | None = None) -> dict[str, Any]:
    return messages_body(request, "claude-x", stream, default_max_tokens)


def test_a_plain_request() -> None:
    assert body(chat(), stream=True) == {
        "model": "claude-x",
        "stream": True,
        "max_tokens": 4096,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
    }


def test_max_tokens_from_the_client_then_the_entry_then_the_default() -> None:
    assert body(chat(max_tokens=77))["max_tokens"] == 77
    assert body(chat(), default_max_tokens=500)["max_tokens"] == 500
    assert body(chat())["max_tokens"] == 4096


def test_system_and_developer_messages_become_the_system_prompt() -> None:
    one = body(chat([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]))
    assert one["system"] == "Be brief."
    assert [turn["role"] for turn in one["messages"]] == ["user"]
    several = body(
        chat(
            [
                {"role": "system", "content": "Be brief."},
                {"role": "developer", "content": [{"type": "text", "text": "Speak French."}]},
                {"role": "user", "content": "Hi"},
            ]
        )
    )
    assert several["system"] == [
        {"type": "text", "text": "Be brief."},
        {"type": "text", "text": "Speak French."},
    ]


def test_multi_turn_keeps_the_order_and_merges_same_role_turns() -> None:
    result = body(
        chat(
            [
                {"role": "user", "content": "One"},
                {"role": "assistant", "content": "Two"},
                {"role": "user", "content": "Three"},
                {"role": "user", "content": "Four"},
            ]
        )
    )
    assert result["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "One"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Two"}]},
        {"role": "user", "content": [{"type": "text", "text": "Three"}, {"type": "text", "text": "Four"}]},
    ]


def test_image_parts_data_urls_and_https_urls() -> None:
    parts = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "high"}},
    ]
    content = body(chat([{"role": "user", "content": parts}]))["messages"][0]["content"]
    assert content == [
        {"type": "text", "text": "What is this?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    ]


def test_a_pdf_file_part_becomes_a_document() -> None:
    part = {
        "type": "file",
        "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0="},
    }
    content = body(chat([{"role": "user", "content": [part]}]))["messages"][0]["content"]
    assert content == [
        {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="},
        }
    ]


@pytest.mark.parametrize(
    ("part", "param"),
    [
        (
            {"type": "input_audio", "input_audio": {"data": "x", "format": "wav"}},
            "messages[0].content[0].type",
        ),
        (
            {"type": "image_url", "image_url": {"url": "ftp://x/y.png"}},
            "messages[0].content[0].image_url.url",
        ),
        (
            {"type": "image_url", "image_url": {"url": "data:image/png,abc"}},
            "messages[0].content[0].image_url.url",
        ),
        ({"type": "file", "file": {"file_id": "file-1"}}, "messages[0].content[0].file.file_data"),
    ],
)
def test_parts_anthropic_cannot_take_are_a_400_naming_them(part: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        body(chat([{"role": "user", "content": [part]}]))
    assert caught.value.param == param


def test_tools_and_tool_choice() -> None:
    result = body(chat(tools=[TOOL], tool_choice="auto"))
    assert result["tools"] == [
        {
            "name": "get_weather",
            "description": "Weather for a city",
            "input_schema": TOOL["function"]["parameters"],
        }
    ]
    assert "tool_choice" not in result  # auto is Anthropic's default
    assert body(chat(tools=[TOOL], tool_choice="none"))["tool_choice"] == {"type": "none"}
    assert body(chat(tools=[TOOL], tool_choice="required"))["tool_choice"] == {"type": "any"}
    named = {"type": "function", "function": {"name": "get_weather"}}
    assert body(chat(tools=[TOOL], tool_choice=named))["tool_choice"] == {
        "type": "tool",
        "name": "get_weather",
    }


def test_parallel_tool_calls_false_disables_parallel_tool_use() -> None:
    assert body(chat(tools=[TOOL], parallel_tool_calls=False))["tool_choice"] == {
        "type": "auto",
        "disable_parallel_tool_use": True,
    }
    assert body(chat(tools=[TOOL], tool_choice="required", parallel_tool_calls=False))["tool_choice"] == {
        "type": "any",
        "disable_parallel_tool_use": True,
    }
    assert "tool_choice" not in body(chat(tools=[TOOL], parallel_tool_calls=True))


def test_a_tool_without_parameters_gets_an_empty_object_schema_and_strict_is_kept() -> None:
    tool = {"type": "function", "function": {"name": "ping", "strict": True}}
    assert body(chat(tools=[tool]))["tools"] == [
        {"name": "ping", "input_schema": {"type": "object", "properties": {}}, "strict": True}
    ]


def test_assistant_tool_calls_and_tool_results() -> None:
    messages = [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                },
                {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": ""}},
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
        {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "21C"}]},
        {"role": "user", "content": "Thanks"},
    ]
    turns = body(chat(messages, tools=[TOOL]))["messages"]
    assert turns == [
        {"role": "user", "content": [{"type": "text", "text": "Weather in Paris and Rome?"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "18C"},
                {
                    "type": "tool_result",
                    "tool_use_id": "call_2",
                    "content": [{"type": "text", "text": "21C"}],
                },
                {"type": "text", "text": "Thanks"},
            ],
        },
    ]


def test_an_assistant_turn_with_only_tool_calls_has_no_empty_text() -> None:
    messages = [
        {"role": "user", "content": "Hi"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": "c", "content": ""},
    ]
    turns = body(chat(messages))["messages"]
    assert turns[1]["content"] == [{"type": "tool_use", "id": "c", "name": "f", "input": {}}]
    assert turns[2]["content"] == [{"type": "tool_result", "tool_use_id": "c"}]


def test_invalid_tool_call_arguments_are_a_400() -> None:
    messages = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "[1, 2]"}}]},
    ]
    with pytest.raises(InvalidRequestError) as caught:
        body(chat(messages))
    assert caught.value.param == "messages[1].tool_calls[0].function.arguments"


def test_stop_temperature_top_p_and_user() -> None:
    result = body(chat(stop=["END", "\n\n"], temperature=0.2, top_p=0.9, user="u-42"))
    assert result["stop_sequences"] == ["END", "\n\n"]
    assert result["temperature"] == 0.2
    assert result["top_p"] == 0.9
    assert result["metadata"] == {"user_id": "u-42"}


@pytest.mark.parametrize(
    ("effort", "budget"), [("minimal", 1024), ("low", 2048), ("medium", 8192), ("high", 16384)]
)
def test_reasoning_effort_becomes_a_thinking_budget_below_max_tokens(effort: str, budget: int) -> None:
    result = body(chat(reasoning_effort=effort, max_tokens=20000))
    assert result["thinking"] == {"type": "enabled", "budget_tokens": budget}
    assert result["max_tokens"] == 20000
    small = body(chat(reasoning_effort=effort, max_tokens=500))
    assert small["max_tokens"] == budget + 500 > small["thinking"]["budget_tokens"]


def test_a_thinking_budget_from_the_client_wins_and_effort_none_means_no_thinking() -> None:
    assert body(chat(reasoning_effort="low", thinking_budget=3000))["thinking"]["budget_tokens"] == 3000
    assert "thinking" not in body(chat(reasoning_effort="none"))
    with pytest.raises(InvalidRequestError) as caught:
        body(chat(reasoning_effort="extreme"))
    assert caught.value.param == "reasoning_effort"


def test_json_schema_response_format_becomes_output_config() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": False}
    response_format = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema, "strict": True}}
    assert body(chat(response_format=response_format))["output_config"] == {
        "format": {"type": "json_schema", "schema": schema}
    }
    assert "output_config" not in body(chat(response_format={"type": "text"}))


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"n": 2}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"logit_bias": {"1": 5.0}}, "logit_bias"),
        ({"seed": 7}, "seed"),
        ({"frequency_penalty": 0.5}, "frequency_penalty"),
        ({"presence_penalty": 0.5}, "presence_penalty"),
        ({"temperature": 1.5}, "temperature"),
        ({"response_format": {"type": "json_object"}}, "response_format.type"),
        ({"raw": {"audio": {"voice": "alloy"}}}, "audio"),
        ({"raw": {"modalities": ["text", "audio"]}}, "modalities"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
    ],
)
def test_parameters_anthropic_cannot_honour_are_a_400_naming_them(fields: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        body(chat(**fields))
    assert caught.value.param == param
    assert caught.value.http_status == 400


def test_penalties_at_zero_are_no_request_at_all() -> None:
    assert "frequency_penalty" not in body(chat(frequency_penalty=0.0, presence_penalty=0.0))


def test_pass_through_forwards_the_anthropic_body_with_only_the_model_swapped() -> None:
    raw = {
        "model": "anthropic/claude-opus-4-1",
        "max_tokens": 1024,
        "system": [{"type": "text", "text": "Long context", "cache_control": {"type": "ephemeral"}}],
        "thinking": {"type": "enabled", "budget_tokens": 2000},
        "messages": [
            {"role": "user", "content": "Hi"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "Hmm.", "signature": "EqQBsig=="},
                    {"type": "redacted_thinking", "data": "opaque"},
                    {"type": "text", "text": "Hello"},
                ],
            },
            {"role": "user", "content": "More"},
        ],
        "a_field_from_the_future": {"x": [1, 2]},
    }
    request = ChatRequest(model=raw["model"], messages=[], raw=raw, wire_format="anthropic_messages",
        native_body=NativeBody("anthropic_messages", raw, {}), stream=True)
    sent = messages_body(request, "claude-opus-4-1", True, None)
    assert sent == {**raw, "model": "claude-opus-4-1", "stream": True}
    assert raw["model"] == "anthropic/claude-opus-4-1", "the client's body is not modified"


def test_pass_through_without_max_tokens_gets_the_default() -> None:
    raw = {"model": "m", "messages": [{"role": "user", "content": "Hi"}]}
    request = ChatRequest(model="m", messages=[], raw=raw, wire_format="anthropic_messages",
        native_body=NativeBody("anthropic_messages", raw, {}))
    assert messages_body(request, "c", False, 900)["max_tokens"] == 900


def test_count_tokens_sends_only_the_prompt() -> None:
    sent = count_tokens_body(
        chat(
            [{"role": "system", "content": "S"}, {"role": "user", "content": "Hi"}],
            tools=[TOOL],
            temperature=0.5,
        ),
        "claude-x",
    )
    assert set(sent) == {"model", "system", "messages", "tools"}
