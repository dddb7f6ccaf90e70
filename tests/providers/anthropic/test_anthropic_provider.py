"""The anthropic provider against the local Anthropic-format upstream: through a real
`sluicegate serve` process with the openai SDK, and in process for pass-through and counting."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from sluicegate.core.request import ChatRequest, NativeBody
from sluicegate.providers.anthropic.config import AnthropicConfig
from sluicegate.providers.anthropic.provider import AnthropicProvider
from tests.providers.anthropic.conftest import CAPPED, MODEL, SECRET, UPSTREAM_MODEL
from tests.support.anthropic_upstream import AnthropicUpstream, Reply, event
from tests.support.server import Gateway

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n not really").decode()
TOOLS: Any = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


def test_the_upstream_gets_the_gateways_key_and_version_never_the_clients(
    client: OpenAI, upstream: AnthropicUpstream, anthropic_gateway: Gateway
) -> None:
    answer = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hello there"}]
    )
    assert answer.choices[0].message.content == "hello there"
    headers = upstream.headers[-1]
    assert headers["x-api-key"] == SECRET
    assert headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in headers
    assert anthropic_gateway.api_key not in json.dumps(headers)
    assert upstream.paths[-1] == "/v1/messages"
    assert upstream.requests[-1]["model"] == UPSTREAM_MODEL
    assert upstream.requests[-1]["max_tokens"] == 4096


def test_an_entry_s_version_headers_and_default_cap(client: OpenAI, upstream: AnthropicUpstream) -> None:
    client.chat.completions.create(model=CAPPED, messages=[{"role": "user", "content": "hi"}])
    assert upstream.headers[-1]["anthropic-version"] == "2099-01-01"
    assert upstream.headers[-1]["anthropic-beta"] == "test-beta-1"
    assert upstream.requests[-1]["max_tokens"] == 321
    assert upstream.requests[-1]["model"] == CAPPED  # no upstream_model: the entry's name


def test_a_wildcard_entry_sends_the_rest_of_the_name(client: OpenAI, upstream: AnthropicUpstream) -> None:
    stream = client.chat.completions.create(
        model="anthropic/claude-opus-4-1", messages=[{"role": "user", "content": "a b c"}], stream=True
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "a b c"
    assert {c.model for c in chunks} == {"anthropic/claude-opus-4-1"}
    assert upstream.requests[-1]["model"] == "claude-opus-4-1"
    assert upstream.requests[-1]["stream"] is True
    listed = [model.id for model in client.models.list()]
    assert "anthropic/*" in listed and MODEL in listed


def test_what_the_upstream_receives_for_a_conversation_with_tools_and_images(
    client: OpenAI, upstream: AnthropicUpstream
) -> None:
    client.chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "system", "content": "Be brief."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Weather where this was taken?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "toolu_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
        ],
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        parallel_tool_calls=False,
        max_completion_tokens=100,
        stop=["END"],
        temperature=0.3,
    )
    sent = upstream.requests[-1]
    assert sent["system"] == "Be brief."
    assert sent["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Weather where this was taken?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}
            ],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"}]},
    ]
    assert sent["tools"][0]["name"] == "get_weather"
    assert sent["tool_choice"] == {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True}
    assert (sent["max_tokens"], sent["stop_sequences"], sent["temperature"]) == (100, ["END"], 0.3)


def test_an_unsupported_parameter_is_a_400_before_the_upstream_is_called(
    client: OpenAI, upstream: AnthropicUpstream
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], logprobs=True
        )
    assert caught.value.body["param"] == "logprobs"  # type: ignore[index]
    assert upstream.requests == []


def anthropic_error(kind: str, message: str) -> bytes:
    return json.dumps({"type": "error", "error": {"type": kind, "message": message}}).encode()


@pytest.mark.parametrize(
    ("status", "kind", "client_status"),
    [
        (400, "invalid_request_error", 400),
        (401, "authentication_error", 502),
        (403, "permission_error", 502),
        (404, "not_found_error", 502),
        (413, "request_too_large", 413),
        (429, "rate_limit_error", 429),
        (500, "api_error", 502),
        (529, "overloaded_error", 503),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_upstream_http_errors_reach_the_client_in_openai_s_shape(
    anthropic_gateway: Gateway,
    upstream: AnthropicUpstream,
    status: int,
    kind: str,
    client_status: int,
    stream: bool,
) -> None:
    upstream.enqueue(
        Reply(status=status, body=anthropic_error(kind, "details here"), headers={"retry-after": "4"})
    )
    response = httpx.post(
        anthropic_gateway.v1 + "/chat/completions",
        json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": stream},
        headers={"Authorization": f"Bearer {anthropic_gateway.api_key}"},
        timeout=15,
    )
    assert response.status_code == client_status, response.text
    error = response.json()["error"]
    assert set(error) >= {"message", "type", "param", "code"}
    assert "upstream" in error["message"] and MODEL in error["message"]
    if status in (429, 529):
        assert response.headers["retry-after"] == "4"


def test_an_error_event_mid_stream_becomes_the_openai_error_event_then_done(
    anthropic_gateway: Gateway, upstream: AnthropicUpstream
) -> None:
    message = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "content": [],
        "model": "m",
        "usage": {},
    }
    upstream.enqueue(
        Reply(
            chunks=[
                event({"type": "message_start", "message": message}),
                event(
                    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
                ),
                event(
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "text_delta", "text": "Par"},
                    }
                ),
                event({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
            ]
        )
    )
    response = httpx.post(
        anthropic_gateway.v1 + "/chat/completions",
        json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": True},
        headers={"Authorization": f"Bearer {anthropic_gateway.api_key}"},
        timeout=15,
    )
    assert response.status_code == 200
    blocks = response.content.decode().strip().split("\n\n")
    assert blocks[-1] == "data: [DONE]"
    error = json.loads(blocks[-2][len("data: ") :])["error"]
    # overloaded, as Anthropic says it: a 503-class error a client may retry
    assert "overloaded_error" in error["message"] and error["code"] == "upstream_overloaded"
    texts = [json.loads(b[6:])["choices"][0]["delta"].get("content") for b in blocks[:-2]]
    assert "Par" in texts


def config(upstream: AnthropicUpstream, **fields: Any) -> AnthropicConfig:
    return AnthropicConfig(
        name="claude-in-process", provider="anthropic", base_url=upstream.base_url, api_key=SECRET, **fields
    )


async def test_pass_through_forwards_the_raw_body_unchanged(upstream: AnthropicUpstream) -> None:
    raw = {
        "model": "claude-in-process",
        "max_tokens": 2048,
        "stream": True,
        "system": [{"type": "text", "text": "Cached context", "cache_control": {"type": "ephemeral"}}],
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "messages": [
            {"role": "user", "content": "Hi"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "Greet back.", "signature": "EqQBsig=="},
                    {"type": "redacted_thinking", "data": "opaque"},
                    {"type": "text", "text": "Hello"},
                ],
            },
            {
                "role": "user",
                "content": [{"type": "text", "text": "say more", "cache_control": {"type": "ephemeral"}}],
            },
        ],
        "top_k": 5,
        "a_field_from_the_future": {"nested": [1, 2, 3]},
    }
    provider = AnthropicProvider(config(upstream, upstream_model="claude-upstream"))
    await provider.start()
    try:
        request = ChatRequest(model=raw["model"], messages=[], raw=raw, wire_format="anthropic_messages",
        native_body=NativeBody("anthropic_messages", raw, {}), stream=True)
        batches = [batch async for batch in provider.stream(request)]
    finally:
        await provider.close()
    assert batches
    assert upstream.requests == [{**raw, "model": "claude-upstream"}]


async def test_count_tokens_asks_the_upstream(upstream: AnthropicUpstream) -> None:
    upstream.enqueue(Reply(body=b'{"input_tokens": 1234}'))
    provider = AnthropicProvider(config(upstream, upstream_model="claude-upstream"))
    await provider.start()
    try:
        request = ChatRequest(
            model="claude-in-process",
            messages=[{"role": "system", "content": "S"}, {"role": "user", "content": "How many?"}],
            raw={},
            tools=TOOLS,
            max_tokens=50,
        )
        assert await provider.count_tokens(request) == 1234
    finally:
        await provider.close()
    assert upstream.paths == ["/v1/messages/count_tokens"]
    assert upstream.requests[0] == {
        "model": "claude-upstream",
        "system": "S",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "How many?"}]}],
        "tools": [
            {
                "name": "get_weather",
                "description": "Weather for a city",
                "input_schema": TOOLS[0]["function"]["parameters"],
            }
        ],
    }
    assert upstream.headers[0]["x-api-key"] == SECRET


def stream_blocks(gateway: Gateway) -> list[str]:
    response = httpx.post(
        gateway.v1 + "/chat/completions",
        json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": True},
        headers={"Authorization": f"Bearer {gateway.api_key}"},
        timeout=15,
    )
    assert response.status_code == 200, response.text
    return response.content.decode().strip().split("\n\n")


def test_an_upstream_that_answers_whole_to_a_stream_request_is_streamed(
    anthropic_gateway: Gateway, upstream: AnthropicUpstream
) -> None:
    whole = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "m",
        "content": [{"type": "text", "text": "All at once"}],
        "stop_reason": "max_tokens",
        "stop_sequence": None,
        "usage": {"input_tokens": 3, "output_tokens": 4},
    }
    upstream.enqueue(Reply(body=json.dumps(whole).encode()))
    blocks = stream_blocks(anthropic_gateway)
    assert blocks[-1] == "data: [DONE]"
    choices = [json.loads(b[6:])["choices"][0] for b in blocks[:-1]]
    assert "".join(c["delta"].get("content") or "" for c in choices) == "All at once"
    assert [c["finish_reason"] for c in choices if c["finish_reason"]] == ["length"]


def test_a_stream_cut_before_its_end_is_an_error_event_not_a_silent_end(
    anthropic_gateway: Gateway, upstream: AnthropicUpstream
) -> None:
    message = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "content": [],
        "model": "m",
        "usage": {},
    }
    upstream.enqueue(
        Reply(
            chunks=[
                event({"type": "message_start", "message": message}),
                event(
                    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
                ),
                event(
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "text_delta", "text": "Half"},
                    }
                ),
            ]
        )
    )
    blocks = stream_blocks(anthropic_gateway)
    assert blocks[-1] == "data: [DONE]"
    error = json.loads(blocks[-2][6:])["error"]
    assert "closed the stream before it finished" in error["message"]
