"""The Anthropic door in front of an OpenAI-compatible upstream (a local server speaking OpenAI's
exact wire format): a tool-use round trip with the `anthropic` SDK, thinking from
`reasoning_content`, what the upstream receives, cache usage, and failures before and after the
first byte."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import httpx
import orjson
import pytest
from anthropic import Anthropic, AsyncAnthropic

from tests.conftest import UPSTREAM_MODEL
from tests.support.anthropic_wire import blocks_of, check_sequence, parse_events
from tests.support.openai_calls import DONE, completion_body, error_body, tool_delta, usage_chunk
from tests.support.openai_upstream import OpenAIUpstream, Reply, chunk
from tests.support.server import Gateway

QUESTION: Any = [{"role": "user", "content": "What's the weather in Paris?"}]
WEATHER_TOOL: Any = {
    "name": "get_weather",
    "description": "The current weather of a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.fixture
def client(gateway: Gateway) -> Anthropic:
    return Anthropic(base_url=gateway.base_url, api_key=gateway.api_key, max_retries=0, timeout=20)


def tool_call_reply(text: str = "Let me check.") -> Reply:
    return Reply(
        chunks=[
            chunk(role="assistant", content=""),
            chunk(text),
            chunk(tool_calls=[tool_delta(0, "", id="call_abc", name="get_weather")]),
            chunk(tool_calls=[tool_delta(0, '{"ci')]),
            chunk(tool_calls=[tool_delta(0, 'ty": "Paris"}')]),
            chunk(finish="tool_calls"),
            usage_chunk(40, 12),
            DONE,
        ]
    )


def raw_stream(gateway: Gateway, **fields: Any) -> tuple[httpx.Response, bytes]:
    body = {"model": UPSTREAM_MODEL, "max_tokens": 100, "stream": True, "messages": QUESTION, **fields}
    with httpx.stream(
        "POST",
        gateway.base_url + "/v1/messages",
        json=body,
        headers={"x-api-key": gateway.api_key},
        timeout=20,
    ) as response:
        raw = response.read()
    return response, raw


def test_a_tool_use_round_trip_with_the_sdk(client: Anthropic, clean_upstream: OpenAIUpstream) -> None:
    clean_upstream.enqueue(tool_call_reply())
    with client.messages.stream(
        model=UPSTREAM_MODEL,
        max_tokens=200,
        messages=QUESTION,
        tools=[WEATHER_TOOL],
        tool_choice={"type": "auto", "disable_parallel_tool_use": True},
        stop_sequences=["END"],
        metadata={"user_id": "user-7"},
    ) as stream:
        first = stream.get_final_message()
    assert first.stop_reason == "tool_use" and first.stop_sequence is None
    assert [block.type for block in first.content] == ["text", "tool_use"]
    assert first.content[0].text == "Let me check."  # type: ignore[union-attr]
    call = first.content[1]
    assert call.type == "tool_use" and call.id == "call_abc" and call.name == "get_weather"
    assert call.input == {"city": "Paris"}
    assert first.usage.input_tokens == 40 and first.usage.output_tokens == 12

    [sent] = clean_upstream.requests
    assert sent["messages"] == [{"role": "user", "content": "What's the weather in Paris?"}]
    assert sent["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": WEATHER_TOOL["input_schema"],
                "description": "The current weather of a city",
            },
        }
    ]
    assert sent["tool_choice"] == "auto" and sent["parallel_tool_calls"] is False
    assert sent["max_completion_tokens"] == 200 and sent["stop"] == ["END"] and sent["user"] == "user-7"
    assert sent["model"] == "gpt-4o-mini" and sent["stream"] is True

    reply = {"role": "assistant", "content": "It is 18 C and sunny in Paris."}
    clean_upstream.enqueue(
        Reply(
            body=completion_body([{"index": 0, "message": reply, "logprobs": None, "finish_reason": "stop"}])
        )
    )
    history: Any = [
        *QUESTION,
        {"role": "assistant", "content": [block.model_dump(exclude_none=True) for block in first.content]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "18 C, sunny"}],
        },
    ]
    answer = client.messages.create(
        model=UPSTREAM_MODEL, max_tokens=200, messages=history, tools=[WEATHER_TOOL]
    )
    assert answer.content[0].text == "It is 18 C and sunny in Paris."  # type: ignore[union-attr]
    assert answer.stop_reason == "end_turn"
    second = clean_upstream.requests[1]
    assert second["messages"][1:] == [
        {
            "role": "assistant",
            "content": "Let me check.",
            "tool_calls": [
                {
                    "id": "call_abc",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_abc", "content": "18 C, sunny"},
    ]
    assert second["stream"] is False


def test_the_raw_tool_call_stream_field_by_field(gateway: Gateway, clean_upstream: OpenAIUpstream) -> None:
    clean_upstream.enqueue(tool_call_reply(text="Checking."))
    response, raw = raw_stream(
        gateway, tools=[WEATHER_TOOL], tool_choice={"type": "tool", "name": "get_weather"}
    )
    assert response.status_code == 200
    events = parse_events(raw)
    check_sequence(events)
    assert [name for name, _ in events] == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert events[5][1] == {
        "type": "content_block_start",
        "index": 1,
        "content_block": {"type": "tool_use", "id": "call_abc", "name": "get_weather", "input": {}},
    }
    assert events[6][1]["delta"] == {"type": "input_json_delta", "partial_json": '{"ci'}
    assert events[9][1] == {
        "type": "message_delta",
        "delta": {"stop_reason": "tool_use", "stop_sequence": None},
        "usage": {
            "input_tokens": 40,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": 12,
        },
    }
    assert clean_upstream.requests[0]["tool_choice"] == {
        "type": "function",
        "function": {"name": "get_weather"},
    }


def test_a_whole_answer_with_a_tool_call(client: Anthropic, clean_upstream: OpenAIUpstream) -> None:
    message = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
            }
        ],
    }
    clean_upstream.enqueue(
        Reply(
            body=completion_body(
                [{"index": 0, "message": message, "logprobs": None, "finish_reason": "tool_calls"}]
            )
        )
    )
    answer = client.messages.create(
        model=UPSTREAM_MODEL, max_tokens=50, messages=QUESTION, tools=[WEATHER_TOOL]
    )
    assert answer.stop_reason == "tool_use"
    assert [block.type for block in answer.content] == ["tool_use"]
    assert answer.content[0].input == {"city": "Oslo"}  # type: ignore[union-attr]
    assert answer.usage.input_tokens == 7 and answer.usage.output_tokens == 3


def test_reasoning_content_becomes_a_thinking_block(
    client: Anthropic, clean_upstream: OpenAIUpstream
) -> None:
    clean_upstream.enqueue(
        Reply(
            chunks=[
                chunk(role="assistant", content="", reasoning_content="The user "),
                chunk(reasoning_content="wants a greeting."),
                chunk("Hello!"),
                chunk(finish="stop"),
                usage_chunk(9, 8, completion_tokens_details={"reasoning_tokens": 5}),
                DONE,
            ]
        )
    )
    with client.messages.stream(
        model=UPSTREAM_MODEL,
        max_tokens=4096,
        messages=QUESTION,
        thinking={"type": "enabled", "budget_tokens": 2048},
    ) as stream:
        final = stream.get_final_message()
    assert [block.type for block in final.content] == ["thinking", "text"]
    assert final.content[0].thinking == "The user wants a greeting."  # type: ignore[union-attr]
    assert final.content[0].signature == ""  # type: ignore[union-attr]
    assert final.content[1].text == "Hello!"  # type: ignore[union-attr]
    assert final.usage.output_tokens == 8
    assert clean_upstream.requests[0]["reasoning_effort"] == "low"


def test_cached_prompt_tokens_are_cache_reads(client: Anthropic, clean_upstream: OpenAIUpstream) -> None:
    usage = usage_chunk(100, 4, prompt_tokens_details={"cached_tokens": 64})
    clean_upstream.enqueue(
        Reply(chunks=[chunk(role="assistant", content=""), chunk("ok"), chunk(finish="stop"), usage, DONE])
    )
    with client.messages.stream(model=UPSTREAM_MODEL, max_tokens=10, messages=QUESTION) as stream:
        final = stream.get_final_message()
    assert final.usage.input_tokens == 36
    assert final.usage.cache_read_input_tokens == 64 and final.usage.cache_creation_input_tokens == 0


def test_images_and_unknown_fields(client: Anthropic, clean_upstream: OpenAIUpstream) -> None:
    reply = {"role": "assistant", "content": "A red dot."}
    clean_upstream.enqueue(
        Reply(
            body=completion_body([{"index": 0, "message": reply, "logprobs": None, "finish_reason": "stop"}])
        )
    )
    content: Any = [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/dot.png"}},
        {"type": "text", "text": "What is this?", "cache_control": {"type": "ephemeral"}},
    ]
    answer = client.messages.create(
        model=UPSTREAM_MODEL,
        max_tokens=10,
        messages=[{"role": "user", "content": content}],
        service_tier="auto",
        extra_body={"top_k": 3, "a_field_from_the_future": {"x": 1}},
    )
    assert answer.content[0].text == "A red dot."  # type: ignore[union-attr]
    [sent] = clean_upstream.requests
    assert sent["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                {"type": "image_url", "image_url": {"url": "https://example.com/dot.png"}},
                {"type": "text", "text": "What is this?"},
            ],
        }
    ]
    assert not {"service_tier", "top_k", "a_field_from_the_future", "max_tokens"} & set(sent)


@pytest.mark.parametrize(
    ("reply", "error", "status", "kind"),
    [
        (
            Reply(status=429, body=error_body("Rate limit reached"), headers={"Retry-After": "7"}),
            anthropic.RateLimitError,
            429,
            "rate_limit_error",
        ),
        (
            Reply(status=400, body=error_body("messages too long", "messages")),
            anthropic.BadRequestError,
            400,
            "invalid_request_error",
        ),
        (Reply(status=500, body=error_body("boom")), anthropic.InternalServerError, 500, "api_error"),
        (Reply(status=401, body=error_body("bad key")), anthropic.InternalServerError, 500, "api_error"),
        (Reply(status=503, body=error_body("down")), anthropic.OverloadedError, 529, "overloaded_error"),
    ],
)
def test_upstream_failures_before_the_first_byte(
    client: Anthropic,
    clean_upstream: OpenAIUpstream,
    reply: Reply,
    error: type[anthropic.APIStatusError],
    status: int,
    kind: str,
) -> None:
    for stream in (True, False):
        clean_upstream.enqueue(reply)
        with pytest.raises(error) as caught:
            client.messages.create(model=UPSTREAM_MODEL, max_tokens=10, messages=QUESTION, stream=stream)
        assert caught.value.status_code == status
        body = caught.value.body
        assert isinstance(body, dict) and body["type"] == "error" and body["error"]["type"] == kind
        assert set(body["error"]) == {"type", "message"}
    if status == 429:
        assert caught.value.response.headers["retry-after"] == "7"


def test_a_failure_after_the_first_byte_is_an_error_event_and_the_end(
    gateway: Gateway, clean_upstream: OpenAIUpstream
) -> None:
    mid_stream_error = b'data: {"error": {"message": "The server had an error", "type": "server_error"}}\n\n'
    clean_upstream.enqueue(
        Reply(chunks=[chunk(role="assistant", content=""), chunk("Hel"), mid_stream_error])
    )
    response, raw = raw_stream(gateway)
    assert response.status_code == 200
    events = parse_events(raw)
    check_sequence(events)
    assert [name for name, _ in events] == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
        "error",
    ]
    assert events[-1][1]["type"] == "error" and events[-1][1]["error"]["type"] == "api_error"
    message = events[-1][1]["error"]["message"]  # the gateway's words; the upstream's go to its log
    assert message.startswith(f"The upstream of `{UPSTREAM_MODEL}` reported an error mid-stream")
    assert "The server had an error" not in message and response.headers["x-request-id"] in message
    assert blocks_of(events) == [{"type": "text", "text": "Hel"}]


def test_an_upstream_that_stops_early_ends_in_an_error_event(
    gateway: Gateway, clean_upstream: OpenAIUpstream
) -> None:
    clean_upstream.enqueue(Reply(chunks=[chunk(role="assistant", content=""), chunk("Hel")]))
    _, raw = raw_stream(gateway)
    events = parse_events(raw)
    check_sequence(events)
    assert (
        events[-1][0] == "error"
        and "closed the stream before it finished" in events[-1][1]["error"]["message"]
    )


async def test_the_sdk_raises_on_an_error_event(gateway: Gateway, clean_upstream: OpenAIUpstream) -> None:
    clean_upstream.enqueue(Reply(chunks=[chunk(role="assistant", content=""), chunk("Hel")]))
    client = AsyncAnthropic(base_url=gateway.base_url, api_key=gateway.api_key, max_retries=0)
    seen: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as caught:
        async for event in await client.messages.create(
            model=UPSTREAM_MODEL, max_tokens=10, messages=QUESTION, stream=True
        ):
            seen.append(event.type)
    assert seen == ["message_start", "content_block_start", "content_block_delta"]
    assert caught.value.body["error"]["type"] == "api_error"  # type: ignore[index]


def test_count_tokens_for_an_upstream_is_an_estimate(
    client: Anthropic, clean_upstream: OpenAIUpstream
) -> None:
    raw = client.messages.with_raw_response.count_tokens(
        model=UPSTREAM_MODEL, messages=QUESTION, tools=[WEATHER_TOOL]
    )
    assert raw.headers["x-sluicegate-token-count"] == "estimate"
    json_text = json.dumps(
        {"system": None, "messages": QUESTION, "tools": [WEATHER_TOOL]}, separators=(",", ":")
    )
    assert raw.parse().input_tokens == (len(json_text.encode()) + 3) // 4
    assert clean_upstream.requests == []  # an estimate asks nobody


def test_a_stream_refused_before_the_first_byte_is_a_plain_json_error(
    gateway: Gateway, clean_upstream: OpenAIUpstream
) -> None:
    clean_upstream.enqueue(Reply(status=429, body=error_body("Rate limit reached"), headers={"Retry-After": "4"}))
    response, raw = raw_stream(gateway)
    assert response.status_code == 429
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["retry-after"] == "4" and response.headers["request-id"]
    assert orjson.loads(raw) == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "Rate limit reached"},
    }
