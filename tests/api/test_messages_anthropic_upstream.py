"""Anthropic SDK -> /v1/messages -> the anthropic provider -> a local server speaking Anthropic's
exact wire format: the client's body reaches the upstream as sent (model swapped), and thinking
blocks with their signatures, redacted thinking, tool calls and cache usage come back unchanged."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import orjson
import pytest
from anthropic import Anthropic

from tests.support.anthropic_upstream import AnthropicUpstream, Reply, event
from tests.support.anthropic_wire import blocks_of, check_sequence, parse_events
from tests.support.server import Gateway, start_gateway

MODEL = "claude-door"
UPSTREAM_MODEL = "claude-sonnet-4-5"
SIGNATURE = "EqQBCkYIBxgCKkB" + "x" * 64
USAGE = {
    "input_tokens": 5,
    "cache_creation_input_tokens": 20,
    "cache_read_input_tokens": 100,
    "output_tokens": 30,
}


@pytest.fixture
def upstream(anthropic_upstream: AnthropicUpstream) -> AnthropicUpstream:
    anthropic_upstream.reset()
    return anthropic_upstream


@pytest.fixture(scope="module")
def door(
    tmp_path_factory: pytest.TempPathFactory, anthropic_upstream: AnthropicUpstream
) -> Iterator[Gateway]:
    entry = {
        "name": MODEL,
        "provider": "anthropic",
        "base_url": anthropic_upstream.base_url,
        "api_key": "sk-ant-upstream",
        "upstream_model": UPSTREAM_MODEL,
    }
    server = start_gateway(tmp_path_factory.mktemp("messages-anthropic"), {"models": [entry]})
    yield server
    server.stop()


@pytest.fixture
def client(door: Gateway) -> Anthropic:
    return Anthropic(base_url=door.base_url, api_key=door.api_key, max_retries=0, timeout=20)


def thinking_stream(stop_reason: str = "end_turn") -> list[dict[str, Any]]:
    message = {
        "id": "msg_upstream",
        "type": "message",
        "role": "assistant",
        "model": UPSTREAM_MODEL,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {**USAGE, "output_tokens": 1},
    }
    return [
        {"type": "message_start", "message": message},
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "thinking", "thinking": "", "signature": ""},
        },
        {"type": "ping"},
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "thinking_delta", "thinking": "The user "},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "thinking_delta", "thinking": "greets me."},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "signature_delta", "signature": SIGNATURE},
        },
        {"type": "content_block_stop", "index": 0},
        {
            "type": "content_block_start",
            "index": 1,
            "content_block": {"type": "redacted_thinking", "data": "EmwKAhgB"},
        },
        {"type": "content_block_stop", "index": 1},
        {"type": "content_block_start", "index": 2, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 2, "delta": {"type": "text_delta", "text": "Hello"}},
        {"type": "content_block_delta", "index": 2, "delta": {"type": "text_delta", "text": " there!"}},
        {"type": "content_block_stop", "index": 2},
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": None},
            "usage": USAGE,
        },
        {"type": "message_stop"},
    ]


HISTORY: Any = [
    {"role": "user", "content": [{"type": "text", "text": "Hi", "cache_control": {"type": "ephemeral"}}]},
    {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "An earlier thought.", "signature": "sig-earlier"},
            {"type": "redacted_thinking", "data": "opaque-earlier"},
            {"type": "text", "text": "Hello."},
        ],
    },
    {"role": "user", "content": "Hi again"},
]


def test_the_body_passes_through_and_thinking_and_cache_usage_come_back(
    client: Anthropic, upstream: AnthropicUpstream
) -> None:
    upstream.enqueue(Reply(chunks=[event(payload) for payload in thinking_stream()]))
    extra = {"a_field_from_the_future": {"keep": [1, 2]}, "top_k": 7}
    thinking: Any = {"type": "enabled", "budget_tokens": 2048}
    with client.messages.stream(
        model=MODEL,
        max_tokens=4096,
        messages=HISTORY,
        thinking=thinking,
        extra_body=extra,
        extra_headers={"anthropic-beta": "interleaved-thinking-2025-05-14"},
    ) as stream:
        final = stream.get_final_message()
    [sent] = upstream.requests
    assert sent == {
        "model": UPSTREAM_MODEL,
        "max_tokens": 4096,
        "messages": HISTORY,
        "thinking": thinking,
        "stream": True,
        **extra,
    }
    assert upstream.headers[0]["x-api-key"] == "sk-ant-upstream"
    assert upstream.headers[0]["anthropic-beta"] == "interleaved-thinking-2025-05-14"  # beta features reach it
    assert [block.type for block in final.content] == ["thinking", "redacted_thinking", "text"]
    assert final.content[0].thinking == "The user greets me."  # type: ignore[union-attr]
    assert final.content[0].signature == SIGNATURE  # type: ignore[union-attr]
    assert final.content[1].data == "EmwKAhgB"  # type: ignore[union-attr]
    assert final.content[2].text == "Hello there!"  # type: ignore[union-attr]
    assert final.stop_reason == "end_turn"
    usage = final.usage
    assert (usage.input_tokens, usage.cache_creation_input_tokens, usage.cache_read_input_tokens) == (
        5,
        20,
        100,
    )
    assert usage.output_tokens == 30


def test_the_raw_events_match_the_upstreams_field_by_field(
    door: Gateway, upstream: AnthropicUpstream
) -> None:
    theirs = thinking_stream()
    upstream.enqueue(Reply(chunks=[event(payload) for payload in theirs]))
    body = {
        "model": MODEL,
        "max_tokens": 4096,
        "stream": True,
        "messages": [{"role": "user", "content": "Hi"}],
    }
    with httpx.stream(
        "POST", door.base_url + "/v1/messages", json=body, headers={"x-api-key": door.api_key}, timeout=20
    ) as response:
        raw = response.read()
    ours = parse_events(raw)
    check_sequence(ours)

    def comparable(events: list[tuple[str, dict[str, Any]]]) -> list[Any]:
        kept = [(name, data) for name, data in events if name not in ("ping", "message_start")]
        return [orjson.loads(orjson.dumps(data)) for _, data in kept]

    assert comparable(ours) == comparable([(item["type"], item) for item in theirs])
    assert blocks_of(ours) == [
        {"type": "thinking", "thinking": "The user greets me.", "signature": SIGNATURE},
        {"type": "redacted_thinking", "data": "EmwKAhgB"},
        {"type": "text", "text": "Hello there!"},
    ]
    assert ours[0][1]["message"]["model"] == MODEL


def test_a_whole_message_with_thinking_and_a_tool_call(
    client: Anthropic, upstream: AnthropicUpstream
) -> None:
    whole = {
        "id": "msg_upstream",
        "type": "message",
        "role": "assistant",
        "model": UPSTREAM_MODEL,
        "content": [
            {"type": "thinking", "thinking": "Need the weather.", "signature": SIGNATURE},
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {"city": "Paris"}},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": USAGE,
    }
    upstream.enqueue(Reply(body=orjson.dumps(whole)))
    tools: Any = [
        {"name": "get_weather", "input_schema": {"type": "object"}, "cache_control": {"type": "ephemeral"}}
    ]
    message = client.messages.create(model=MODEL, max_tokens=2048, messages=HISTORY, tools=tools)
    assert upstream.requests[0]["tools"] == tools and upstream.requests[0]["messages"] == HISTORY
    assert [block.model_dump(exclude_none=True) for block in message.content] == whole["content"]
    assert message.stop_reason == "tool_use" and message.stop_sequence is None
    assert message.usage.model_dump(exclude_none=True) == USAGE


def test_count_tokens_is_the_upstreams_exact_count(client: Anthropic, upstream: AnthropicUpstream) -> None:
    upstream.enqueue(Reply(body=b'{"input_tokens": 1234}'))
    raw = client.messages.with_raw_response.count_tokens(model=MODEL, messages=HISTORY, system="Be brief.")
    assert raw.headers["x-sluicegate-token-count"] == "exact"
    assert raw.parse().input_tokens == 1234
    assert upstream.paths == ["/v1/messages/count_tokens"]
    assert upstream.requests[0] == {"model": UPSTREAM_MODEL, "messages": HISTORY, "system": "Be brief."}


def test_upstream_errors_keep_anthropics_types(client: Anthropic, upstream: AnthropicUpstream) -> None:
    overloaded = b'{"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}'
    upstream.enqueue(Reply(status=529, body=overloaded))
    with pytest.raises(anthropic.OverloadedError) as caught:
        client.messages.create(model=MODEL, max_tokens=10, messages=HISTORY)
    assert caught.value.status_code == 529
    invalid = (
        b'{"type": "error", "error": {"type": "invalid_request_error", "message": "prompt is too long"}}'
    )
    upstream.enqueue(Reply(status=400, body=invalid))
    with pytest.raises(anthropic.BadRequestError, match="prompt is too long"):
        client.messages.create(model=MODEL, max_tokens=10, messages=HISTORY, stream=True)


def test_an_error_event_mid_stream_ends_the_stream(door: Gateway, upstream: AnthropicUpstream) -> None:
    events = thinking_stream()[:5]
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    upstream.enqueue(Reply(chunks=[*(event(payload) for payload in events), event(error)]))
    body = {
        "model": MODEL,
        "max_tokens": 100,
        "stream": True,
        "messages": [{"role": "user", "content": "Hi"}],
    }
    response = httpx.post(
        door.base_url + "/v1/messages", json=body, headers={"x-api-key": door.api_key}, timeout=20
    )
    ours = parse_events(response.content)
    check_sequence(ours)
    # the gateway's own words, naming the upstream's error type (its text goes to the log)
    assert ours[-1][0] == "error" and "overloaded_error" in ours[-1][1]["error"]["message"]
