"""An Anthropic Messages body -> the canonical request: every field's translation, the raw body
kept for an Anthropic upstream, strict validation with Anthropic-style field paths, and the
count_tokens estimate."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from sluicegate.api.messages.count import MEDIA_TOKENS, estimate_input_tokens
from sluicegate.api.messages.translate import parse_count_request, parse_messages_request
from sluicegate.errors import InvalidRequestError

PNG = "iVBORw0KGgo="


def body(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"model": "m", "max_tokens": 64, "messages": [{"role": "user", "content": "Hi"}]}
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


def test_a_minimal_body() -> None:
    chat = parse_messages_request(body())
    assert chat.wire_format == "anthropic_messages"
    assert chat.model == "m" and chat.max_tokens == 64 and chat.stream is False
    assert chat.messages == [{"role": "user", "content": "Hi"}]
    assert chat.tools is None and chat.tool_choice is None and chat.stop == []


def test_the_raw_body_is_the_clients_own_unknown_fields_and_blocks_included() -> None:
    sent = body(
        system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Hi", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
                    {"type": "search_result", "source": "https://x", "title": "t", "content": []},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                    {"type": "redacted_thinking", "data": "opaque"},
                    {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}},
                    {"type": "text", "text": "Hello"},
                ],
            },
        ],
        service_tier="auto",
        context_management={"edits": []},
        mcp_servers=[{"type": "url", "url": "https://mcp", "name": "x"}],
        brand_new_field={"anything": [1, 2]},
        top_k=5,
    )
    before = copy.deepcopy(sent)
    chat = parse_messages_request(sent)
    assert chat.raw is sent and chat.raw == before
    # other providers see only what they can read
    assert chat.messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
    ]


def test_system_as_text_blocks_is_one_system_message() -> None:
    chat = parse_messages_request(body(system=[{"type": "text", "text": "A"}, {"type": "text", "text": "B"}]))
    assert chat.messages[0] == {"role": "system", "content": "A\nB"}
    assert parse_messages_request(body(system="Be kind.")).messages[0] == {
        "role": "system",
        "content": "Be kind.",
    }
    assert parse_messages_request(body(system="")).messages[0]["role"] == "user"


def test_images_become_image_url_parts() -> None:
    content = [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
        {"type": "image", "source": {"type": "file", "file_id": "file_011"}},
        {"type": "text", "text": "What are these?"},
    ]
    chat = parse_messages_request(body(messages=[{"role": "user", "content": content}]))
    assert chat.messages == [
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
                {"type": "text", "text": "What are these?"},
            ],
        }
    ]


def test_documents_as_text_and_pdf_parts() -> None:
    content = [
        {
            "type": "document",
            "source": {"type": "text", "media_type": "text/plain", "data": "Grass is green."},
        },
        {
            "type": "document",
            "title": "spec",
            "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="},
        },
        {"type": "document", "source": {"type": "url", "url": "https://example.com/a.pdf"}},
    ]
    chat = parse_messages_request(body(messages=[{"role": "user", "content": content}]))
    assert chat.messages[0]["content"] == [
        {"type": "text", "text": "Grass is green."},
        {
            "type": "file",
            "file": {"filename": "spec.pdf", "file_data": "data:application/pdf;base64,JVBERi0="},
        },
    ]


def test_a_tool_use_round_trip_becomes_tool_calls_and_tool_messages() -> None:
    messages = [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "Two calls.", "signature": "sig"},
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {"city": "Rome"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18 C, sunny"},
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_2",
                    "is_error": True,
                    "content": [
                        {"type": "text", "text": "service down"},
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/gif", "data": "R0lG"},
                        },
                        {"type": "text", "text": "retry later"},
                    ],
                },
                {"type": "text", "text": "Thanks!"},
            ],
        },
    ]
    chat = parse_messages_request(body(messages=messages))
    assert chat.messages == [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {
                    "id": "toolu_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                },
                {
                    "id": "toolu_2",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": "18 C, sunny"},
        {"role": "tool", "tool_call_id": "toolu_2", "content": "Error: service down\nretry later"},
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": "data:image/gif;base64,R0lG"}},
                {"type": "text", "text": "Thanks!"},
            ],
        },
    ]


def test_an_assistant_turn_of_only_tool_calls_has_null_content_and_empty_results_are_empty() -> None:
    messages = [
        {"role": "user", "content": "Go"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "now", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1"}]},
    ]
    chat = parse_messages_request(body(messages=messages))
    assert chat.messages[1] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "now", "arguments": "{}"}}],
    }
    assert chat.messages[2:] == [{"role": "tool", "tool_call_id": "t1", "content": ""}]


def test_tools_and_tool_choice() -> None:
    tools = [
        {
            "name": "get_weather",
            "description": "Weather of a city",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
            "cache_control": {"type": "ephemeral"},
        },
        {"type": "custom", "name": "now", "input_schema": {"type": "object"}},
        {"type": "web_search_20250305", "name": "web_search", "max_uses": 3},
    ]
    chat = parse_messages_request(
        body(tools=tools, tool_choice={"type": "any", "disable_parallel_tool_use": True})
    )
    assert chat.tools == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                "description": "Weather of a city",
            },
        },
        {"type": "function", "function": {"name": "now", "parameters": {"type": "object"}}},
    ]
    assert chat.tool_choice == "required" and chat.parallel_tool_calls is False
    choices = {
        "auto": "auto",
        "none": "none",
        "tool": {"type": "function", "function": {"name": "now"}},
    }
    for kind, expected in choices.items():
        choice = {"type": kind, "name": "now"} if kind == "tool" else {"type": kind}
        assert parse_messages_request(body(tools=tools, tool_choice=choice)).tool_choice == expected
    only_server = parse_messages_request(body(tools=tools[2:], tool_choice={"type": "auto"}))
    assert only_server.tools is None and only_server.tool_choice is None
    assert parse_messages_request(body(tool_choice={"type": "none"})).tool_choice == "none"


def test_sampling_metadata_stream_and_thinking() -> None:
    chat = parse_messages_request(
        body(
            stream=True,
            temperature=0.5,
            top_p=0.9,
            top_k=40,
            stop_sequences=["END", "\n\nHuman:"],
            metadata={"user_id": "user-42"},
            thinking={"type": "enabled", "budget_tokens": 2048},
        )
    )
    assert chat.stream is True and chat.temperature == 0.5 and chat.top_p == 0.9
    assert chat.stop == ["END", "\n\nHuman:"]
    assert chat.user == "user-42" and chat.metadata is None
    assert chat.thinking_budget == 2048 and chat.reasoning_effort == "low"
    assert chat.raw["top_k"] == 40
    efforts = {1024: "low", 4095: "low", 4096: "medium", 16383: "medium", 16384: "high", 64000: "high"}
    for budget, effort in efforts.items():
        chat = parse_messages_request(body(thinking={"type": "enabled", "budget_tokens": budget}))
        assert chat.reasoning_effort == effort
    for thinking in ({"type": "disabled"}, {"type": "adaptive"}):
        chat = parse_messages_request(body(thinking=thinking))
        assert chat.thinking_budget is None and chat.reasoning_effort is None


MISSING = object()

INVALID: dict[str, tuple[dict[str, Any], str]] = {
    "no-max-tokens": (body(max_tokens=None), "max_tokens: Field required"),
    "max-tokens-zero": (body(max_tokens=0), "max_tokens: Input should be greater than or equal to 1"),
    "max-tokens-string": (body(max_tokens="64"), "max_tokens: Input should be a valid integer"),
    "no-model": (body(model=None), "model: Field required"),
    "empty-model": (body(model=""), "model: String should have at least 1 character"),
    "no-messages": (body(messages=None), "messages: Field required"),
    "empty-messages": (
        body(messages=[]),
        "messages: List should have at least 1 item after validation, not 0",
    ),
    "bad-role": (
        body(messages=[{"role": "tool", "content": "x"}]),
        "messages.0.role: Input should be 'user', 'assistant' or 'system'",
    ),
    "content-number": (
        body(messages=[{"role": "user", "content": 5}]),
        "messages.0.content: Input should be a valid string or a valid list",
    ),
    "block-not-object": (
        body(messages=[{"role": "user", "content": ["hi"]}]),
        "messages.0.content.0: Input should be an object",
    ),
    "block-without-type": (
        body(messages=[{"role": "user", "content": [{"text": "hi"}]}]),
        "messages.0.content.0.type: Field required",
    ),
    "text-without-text": (
        body(messages=[{"role": "user", "content": [{"type": "text"}]}]),
        "messages.0.content.0.text: Field required",
    ),
    "image-without-data": (
        body(
            messages=[
                {
                    "role": "user",
                    "content": [{"type": "image", "source": {"type": "base64", "media_type": "image/png"}}],
                }
            ]
        ),
        "messages.0.content.0.source.data: Field required",
    ),
    "image-bad-media-type": (
        body(
            messages=[
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/bmp", "data": "x"},
                        }
                    ],
                }
            ]
        ),
        "messages.0.content.0.source.media_type: Input should be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp'",
    ),
    "tool-use-input-not-object": (
        body(
            messages=[
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "t", "name": "f", "input": "{}"}],
                }
            ]
        ),
        "messages.0.content.0.input: Input should be an object",
    ),
    "tool-result-without-id": (
        body(messages=[{"role": "user", "content": [{"type": "tool_result", "content": "x"}]}]),
        "messages.0.content.0.tool_use_id: Field required",
    ),
    "temperature-above-one": (body(temperature=1.5), "temperature: Input should be less than or equal to 1"),
    "top-p-negative": (body(top_p=-0.1), "top_p: Input should be greater than or equal to 0"),
    "top-k-negative": (body(top_k=-1), "top_k: Input should be greater than or equal to 0"),
    "stream-string": (body(stream="yes"), "stream: Input should be a valid boolean"),
    "stop-sequences-string": (body(stop_sequences="END"), "stop_sequences: Input should be a valid list"),
    "system-number": (body(system=3), "system: Input should be a valid string or a valid list"),
    "tool-without-schema": (body(tools=[{"name": "f"}]), "tools.0.input_schema: Field required"),
    "tool-without-name": (body(tools=[{"input_schema": {}}]), "tools.0.name: Field required"),
    "tool-choice-unknown": (
        body(tool_choice={"type": "sometimes"}),
        "tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'",
    ),
    "tool-choice-tool-without-name": (body(tool_choice={"type": "tool"}), "tool_choice.name: Field required"),
    "thinking-without-budget": (body(thinking={"type": "enabled"}), "thinking.budget_tokens: Field required"),
    "thinking-budget-small": (
        body(thinking={"type": "enabled", "budget_tokens": 100}),
        "thinking.budget_tokens: Input should be greater than or equal to 1024",
    ),
    "metadata-user-number": (
        body(metadata={"user_id": 7}),
        "metadata.user_id: Input should be a valid string",
    ),
}


@pytest.mark.parametrize("case", INVALID)
def test_invalid_bodies_name_the_field_as_anthropic_does(case: str) -> None:
    sent, message = INVALID[case]
    with pytest.raises(InvalidRequestError) as caught:
        parse_messages_request(sent)
    assert caught.value.message == message
    assert caught.value.http_status == 400


@pytest.mark.parametrize("sent", [[], "text", 3, None])
def test_a_body_that_is_not_an_object(sent: Any) -> None:
    with pytest.raises(InvalidRequestError, match="must be a JSON object"):
        parse_messages_request(sent)


def test_count_tokens_needs_no_max_tokens_but_validates_the_rest() -> None:
    chat = parse_count_request({"model": "m", "messages": [{"role": "user", "content": "Hi"}]})
    assert chat.messages == [{"role": "user", "content": "Hi"}] and chat.max_tokens is None
    with pytest.raises(InvalidRequestError, match=r"^messages: Field required$"):
        parse_count_request({"model": "m"})


def test_the_count_estimate_is_a_quarter_of_the_json_with_media_at_a_flat_rate() -> None:
    text_only = {
        "model": "m",
        "system": "Be brief.",
        "messages": [{"role": "user", "content": "Hello there"}],
    }
    json_text = orjson.dumps({"system": "Be brief.", "messages": text_only["messages"], "tools": None})
    assert estimate_input_tokens(text_only) == (len(json_text) + 3) // 4
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "A" * 400_000}}
    with_image = {
        "model": "m",
        "messages": [{"role": "user", "content": [image, {"type": "text", "text": "?"}]}],
    }
    estimate = estimate_input_tokens(with_image)
    assert MEDIA_TOKENS < estimate < MEDIA_TOKENS + 50  # the base64 data itself is not counted
