"""The `openai` provider end to end: a live gateway in front of the mock OpenAI upstream.

Raw httpx where the bytes matter, the official SDK where a client's view matters.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from tests.conftest import UPSTREAM_MODEL
from tests.support.openai_upstream import OpenAIUpstream, Reply, chunk, sse
from tests.support.server import Gateway, free_port, start_gateway

DONE = b"data: [DONE]\n\n"
MESSAGES = [{"role": "user", "content": "Hi"}]
TOOLS: Any = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


@pytest.fixture
def client(gateway: Gateway) -> OpenAI:
    return OpenAI(base_url=gateway.v1, api_key=gateway.api_key, max_retries=0, timeout=15)


def usage_chunk(prompt: int, completion: int, **extra: Any) -> bytes:
    usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    return sse(
        {
            "id": "u",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "m",
            "choices": [],
            "usage": {**usage, **extra},
        }
    )


def raw_chunk(choices: list[dict[str, Any]], **extra: Any) -> bytes:
    return sse(
        {
            "id": "u",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "m",
            "choices": choices,
            **extra,
        }
    )


def tool_delta(index: int, arguments: str, id: str | None = None, name: str | None = None) -> dict[str, Any]:
    call: dict[str, Any] = {"index": index, "function": {"arguments": arguments}}
    if id is not None:
        call.update(id=id, type="function")
    if name is not None:
        call["function"]["name"] = name
    return call


def post(gateway: Gateway, body: dict[str, Any], timeout: float = 15) -> httpx.Response:
    full = {"model": UPSTREAM_MODEL, "messages": MESSAGES, **body}
    return httpx.post(
        gateway.v1 + "/chat/completions",
        json=full,
        headers={"Authorization": f"Bearer {gateway.api_key}"},
        timeout=timeout,
    )


def stream_events(gateway: Gateway, **body: Any) -> list[Any]:
    """POST a streaming request; return the decoded data payloads, `[DONE]` as the string."""
    response = post(gateway, {"stream": True, **body})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    raw = response.content
    assert raw.endswith(b"\n\n")
    events: list[Any] = []
    for block in raw[:-2].split(b"\n\n"):
        assert block.startswith(b"data: "), block
        assert b"\n" not in block and b"\r" not in block
        data = block[len(b"data: ") :]
        events.append("[DONE]" if data == b"[DONE]" else json.loads(data))
    assert events.count("[DONE]") == 1 and events[-1] == "[DONE]"
    return events[:-1]


def text_of(chunks: list[dict[str, Any]], index: int = 0) -> str:
    return "".join(
        c["delta"].get("content") or "" for chunk in chunks for c in chunk["choices"] if c["index"] == index
    )


def finishes(chunks: list[dict[str, Any]]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for item in chunks:
        for c in item["choices"]:
            if c["finish_reason"] is not None:
                out.setdefault(c["index"], []).append(c["finish_reason"])
    return out


def assert_openai_shaped(chunks: list[dict[str, Any]], *, include_usage: bool = False) -> None:
    assert chunks
    assert len({c["id"] for c in chunks}) == 1 and chunks[0]["id"].startswith("chatcmpl-")
    assert len({c["created"] for c in chunks}) == 1
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert all(c["model"] == UPSTREAM_MODEL for c in chunks)
    with_choices = [c for c in chunks if c["choices"]]
    assert with_choices[0]["choices"][0]["delta"].get("role") == "assistant"
    for item in with_choices:
        for c in item["choices"]:
            assert set(c) >= {"index", "delta", "finish_reason"}
            if c["finish_reason"] is not None:
                assert c["delta"] == {}, "the finish chunk carries an empty delta"
    per_choice_last: dict[int, dict[str, Any]] = {}
    for item in with_choices:
        for c in item["choices"]:
            per_choice_last[c["index"]] = c
    assert all(c["finish_reason"] is not None for c in per_choice_last.values())
    assert all(len(reasons) == 1 for reasons in finishes(chunks).values())
    if include_usage:
        assert all("usage" in c for c in chunks)
        assert all(c["usage"] is None for c in chunks[:-1])
    else:
        assert all("usage" not in c for c in chunks)


def text_reply(*pieces: str, finish: str = "stop", usage: bool = True) -> Reply:
    chunks = [chunk(role="assistant", content="")]
    chunks += [chunk(piece) for piece in pieces]
    chunks.append(chunk(finish=finish))
    if usage:
        chunks.append(usage_chunk(9, len(pieces)))
    return Reply(chunks=[*chunks, DONE])


# the happy path --------------------------------------------------------------------------------


def test_text_stream_is_exactly_openai_shaped(gateway: Gateway, clean_upstream: OpenAIUpstream) -> None:
    clean_upstream.enqueue(text_reply("Hel", "lo", " wörld"))
    chunks = stream_events(gateway)
    assert_openai_shaped(chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert text_of(chunks) == "Hello wörld"
    assert chunks[-1]["choices"] == [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}]


def test_upstream_gets_its_model_name_credentials_and_usage_option(
    gateway: Gateway, clean_upstream: OpenAIUpstream
) -> None:
    clean_upstream.enqueue(text_reply("ok"))
    chunks = stream_events(gateway)
    assert {c["model"] for c in chunks} == {UPSTREAM_MODEL}
    [sent] = clean_upstream.requests
    assert sent["model"] == "gpt-4o-mini"
    assert sent["stream"] is True
    assert sent["stream_options"] == {"include_usage": True}
    assert sent["messages"] == MESSAGES
    headers = {k.lower(): v for k, v in clean_upstream.headers[0].items()}
    assert headers["authorization"] == "Bearer upstream-secret"
    assert gateway.api_key not in json.dumps(headers)


def test_unknown_body_fields_are_forwarded_untouched(
    gateway: Gateway, clean_upstream: OpenAIUpstream
) -> None:
    extra = {
        "logit_bias": {"50256": -100},
        "user": "user-1234",
        "custom_field": {"nested": [1, {"deep": None}], "flag": True},
        "temperature": 0.3,
        "stream_options": {"include_usage": False, "include_obfuscation": False},
    }
    clean_upstream.enqueue(text_reply("ok"))
    stream_events(gateway, **extra)
    [sent] = clean_upstream.requests
    for key in ("logit_bias", "user", "custom_field", "temperature"):
        assert sent[key] == extra[key]
    # the client's own stream options are kept; only include_usage is forced on upstream
    assert sent["stream_options"] == {"include_usage": True, "include_obfuscation": False}


def test_include_usage_gives_a_last_chunk_with_empty_choices(
    gateway: Gateway, clean_upstream: OpenAIUpstream
) -> None:
    details = {
        "prompt_tokens_details": {"cached_tokens": 2},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }
    reply = text_reply("a", "b", usage=False)
    reply.chunks.insert(-1, usage_chunk(11, 2, **details))
    clean_upstream.enqueue(reply)
    chunks = stream_events(gateway, stream_options={"include_usage": True})
    assert_openai_shaped(chunks, include_usage=True)
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 11, "completion_tokens": 2, "total_tokens": 13, **details}


def test_usage_not_asked_means_no_usage_chunk_and_no_usage_key(
    gateway: Gateway, clean_upstream: OpenAIUpstream
) -> None:
    clean_upstream.enqueue(text_reply("a", "b"))
    chunks = stream_events(gateway)
    assert all(c["choices"] for c in chunks)
    assert all("usage" not in c for c in chunks)


def test_usage_via_the_sdk(client: OpenAI, clean_upstream: OpenAIUpstream) -> None:
    clean_upstream.enqueue(text_reply("x", "y", "z"))
    stream = client.chat.completions.create(
        model=UPSTREAM_MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (9, 3)
    assert chunks[-1].usage.total_tokens == 12
    assert all(c.usage is None for c in chunks[:-1])


# tool calls ------------------------------------------------------------------------------------


def tool_reply() -> Reply:
    pieces = ['{"ci', 'ty": "Pa', 'ris"}']
    chunks = [chunk(role="assistant", content=None)]
    chunks.append(chunk(tool_calls=[tool_delta(0, "", id="call_abc", name="get_weather")]))
    chunks += [chunk(tool_calls=[tool_delta(0, piece)]) for piece in pieces]
    chunks += [chunk(finish="tool_calls"), usage_chunk(30, 12), DONE]
    return Reply(chunks=chunks)


def test_tool_call_stream_is_reassembled_by_the_sdk_helper(
    client: OpenAI, clean_upstream: OpenAIUpstream
) -> None:
    clean_upstream.enqueue(tool_reply())
    with client.chat.completions.stream(model=UPSTREAM_MODEL, messages=MESSAGES, tools=TOOLS) as stream:
        completion = stream.get_final_completion()
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None and len(choice.message.tool_calls) == 1
    call = choice.message.tool_calls[0]
    assert call.id == "call_abc" and call.type == "function"
    assert call.function.name == "get_weather"
    assert call.function.arguments == '{"city": "Paris"}'
    assert clean_upstream.requests[0]["tools"] == TOOLS


def test_tool_call_chunks_name_once_then_fragments(gateway: Gateway, clean_upstream: OpenAIUpstream) -> None:
    clean_upstream.enqueue(tool_reply())
    chunks = stream_events(gateway, tools=TOOLS)
    assert_openai_shaped(chunks)
    calls = [call for c in chunks for ch in c["choices"] for call in ch["delta"].get("tool_calls") or ()]
    assert calls[0] == {
        "index": 0,
        "id": "call_abc",
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    assert all("id" not in call and "name" not in call["function"] for call in calls[1:])
    assert "".join(call["function"]["arguments"] for call in calls) == '{"city": "Paris"}'
    assert finishes(chunks) == {0: ["tool_calls"]}


def test_parallel_tool_calls_keep_their_indexes(gateway: Gateway, clean_upstream: OpenAIUpstream) -> None:
    clean_upstream.enqueue(
        Reply(
            chunks=[
                chunk(role="assistant", content=None),
                chunk(tool_calls=[tool_delta(0, "", id="call_0", name="get_weather")]),
                chunk(tool_calls=[tool_delta(0, '{"city": "Oslo"}')]),
                chunk(tool_calls=[tool_delta(1, "", id="call_1", name="get_time")]),
                chunk(tool_calls=[tool_delta(1, '{"tz": ')]),
                chunk(tool_calls=[tool_delta(1, '"CET"}')]),
                chunk(finish="tool_calls"),
                DONE,
            ]
        )
    )
    chunks = stream_events(gateway, tools=TOOLS)
    calls: dict[int, dict[str, str]] = {}
    for item in chunks:
        for ch in item["choices"]:
            for call in ch["delta"].get("tool_calls") or ():
                entry = calls.setdefault(call["index"], {"id": "", "name": "", "arguments": ""})
                entry["id"] += call.get("id", "")
                entry["name"] += call["function"].get("name", "")
                entry["arguments"] += call["function"].get("arguments", "")
    assert calls == {
        0: {"id": "call_0", "name": "get_weather", "arguments": '{"city": "Oslo"}'},
        1: {"id": "call_1", "name": "get_time", "arguments": '{"tz": "CET"}'},
    }
    assert finishes(chunks) == {0: ["tool_calls"]}


def test_parallel_tool_calls_through_the_sdk_helper(client: OpenAI, clean_upstream: OpenAIUpstream) -> None:
    clean_upstream.enqueue(
        Reply(
            chunks=[
                chunk(role="assistant", content=None),
                chunk(
                    tool_calls=[
                        tool_delta(0, '{"city": "A"}', id="c0", name="get_weather"),
                        tool_delta(1, '{"city": "B"}', id="c1", name="get_weather"),
                    ]
                ),
                chunk(finish="tool_calls"),
                DONE,
            ]
        )
    )
    with client.chat.completions.stream(model=UPSTREAM_MODEL, messages=MESSAGES, tools=TOOLS) as stream:
        completion = stream.get_final_completion()
    calls = completion.choices[0].message.tool_calls or []
    assert [(c.id, c.function.name, c.function.arguments) for c in calls] == [
        ("c0", "get_weather", '{"city": "A"}'),
        ("c1", "get_weather", '{"city": "B"}'),
    ]


# n > 1 -----------------------------------------------------------------------------------------


def test_n_choices_interleave_and_each_finishes(gateway: Gateway, clean_upstream: OpenAIUpstream) -> None:
    clean_upstream.enqueue(
        Reply(
            chunks=[
                chunk(role="assistant", content="", index=0),
                chunk(role="assistant", content="", index=1),
                chunk("A1", index=0),
                chunk("B1", index=1),
                chunk("B2", index=1),
                chunk(finish="length", index=1),
                chunk("A2", index=0),
                chunk(finish="stop", index=0),
                DONE,
            ]
        )
    )
    chunks = stream_events(gateway, n=2)
    assert_openai_shaped(chunks)
    assert text_of(chunks, 0) == "A1A2"
    assert text_of(chunks, 1) == "B1B2"
    assert finishes(chunks) == {0: ["stop"], 1: ["length"]}
    roles = [ch["index"] for c in chunks for ch in c["choices"] if ch["delta"].get("role") == "assistant"]
    assert sorted(roles) == [0, 1]
    assert clean_upstream.requests[0]["n"] == 2


# upstream quirks -------------------------------------------------------------------------------


def test_missing_finish_reason_keys_still_end_with_stop(
    gateway: Gateway, clean_upstream: OpenAIUpstream
) -> None:
    clean_upstream.enqueue(
        Reply(
            chunks=[
                raw_chunk([{"index": 0, "delta": {"role": "assistant"}}]),
                raw_chunk([{"index": 0, "delta": {"content": "no"}}]),
                raw_chunk([{"index": 0, "delta": {"content": " finish"}}]),
                DONE,
            ]
        )
    )
    chunks = stream_events(gateway)
    assert_openai_shaped(chunks)
    assert text_of(chunks) == "no finish"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_finish_in_the_same_chunk_as_content_is_split(
    gateway: Gateway, clean_upstream: OpenAIUpstream
) -> None:
    clean_upstream.enqueue(
        Reply(chunks=[chunk(role="assistant", content="Hi"), chunk(" there.", finish="stop"), DONE])
    )
    chunks = stream_events(gateway)
    assert_openai_shaped(chunks)
    assert text_of(chunks) == "Hi there."
    assert chunks[-2]["choices"][0]["delta"] == {"content": " there."}
    assert chunks[-2]["choices"][0]["finish_reason"] is None
    assert chunks[-1]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}


def test_usage_on_every_chunk_only_the_last_counts(gateway: Gateway, clean_upstream: OpenAIUpstream) -> None:
    def with_usage(delta: dict[str, Any], completion: int, finish: str | None = None) -> bytes:
        usage = {"prompt_tokens": 4, "completion_tokens": completion, "total_tokens": 4 + completion}
        return raw_chunk([{"index": 0, "delta": delta, "finish_reason": finish}], usage=usage)

    clean_upstream.enqueue(
        Reply(
            chunks=[
                with_usage({"role": "assistant", "content": ""}, 0),
                with_usage({"content": "a"}, 1),
                with_usage({"content": "b"}, 2),
                with_usage({}, 3, "stop"),
                DONE,
            ]
        )
    )
    chunks = stream_events(gateway, stream_options={"include_usage": True})
    assert_openai_shaped(chunks, include_usage=True)
    assert [c["usage"] for c in chunks if c["usage"]] == [
        {"prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 7}
    ]
    assert chunks[-1]["choices"] == []


def test_empty_choices_chunks_and_keepalive_comments_are_skipped(
    gateway: Gateway, clean_upstream: OpenAIUpstream
) -> None:
    clean_upstream.enqueue(
        Reply(
            chunks=[
                b": keep-alive\n\n",
                raw_chunk([]),
                chunk(role="assistant", content=""),
                b": OPENROUTER PROCESSING\n\n",
                raw_chunk([], usage=None),
                chunk("kept"),
                b":\n\n",
                chunk(finish="stop"),
                DONE,
            ]
        )
    )
    chunks = stream_events(gateway)
    assert_openai_shaped(chunks)
    assert text_of(chunks) == "kept"
    assert all(c["choices"] for c in chunks)


def test_crlf_framing(gateway: Gateway, clean_upstream: OpenAIUpstream) -> None:
    reply = text_reply("carriage", " return")
    reply.chunks = [data.replace(b"\n", b"\r\n") for data in reply.chunks]
    clean_upstream.enqueue(reply)
    chunks = stream_events(gateway)
    assert_openai_shaped(chunks)
    assert text_of(chunks) == "carriage return"


def test_chunk_split_across_tcp_writes_mid_json_and_mid_utf8(
    gateway: Gateway, clean_upstream: OpenAIUpstream
) -> None:
    text = "Grüße ☃ 𝄞"
    whole = b"".join(text_reply(text).chunks)
    encoded = text.encode()
    cuts = sorted(
        {
            whole.index(b'"content":"G') + 5,  # inside a JSON key
            whole.index(encoded) + 3,  # inside the two bytes of `ü`
            whole.index("☃".encode()) + 1,  # inside the snowman
            whole.index("𝄞".encode()) + 2,  # inside the four-byte clef
            whole.index(b"\n\ndata") + 1,  # between the two LFs of a frame
            whole.index(b"[DONE]") + 2,
        }
    )
    pieces = [whole[a:b] for a, b in zip([0, *cuts], [*cuts, len(whole)], strict=True)]
    clean_upstream.enqueue(Reply(chunks=pieces, delay_s=0.03))
    chunks = stream_events(gateway)
    assert_openai_shaped(chunks)
    assert text_of(chunks) == text


def test_reasoning_content_deltas_pass_through(gateway: Gateway, clean_upstream: OpenAIUpstream) -> None:
    clean_upstream.enqueue(
        Reply(
            chunks=[
                chunk(role="assistant", content=None, reasoning_content=""),
                chunk(None, reasoning_content="Let me "),
                chunk(None, reasoning_content="think."),
                chunk("Answer", reasoning_content=None),
                chunk(finish="stop"),
                DONE,
            ]
        )
    )
    chunks = stream_events(gateway)
    assert_openai_shaped(chunks)
    reasoning = "".join(ch["delta"].get("reasoning_content") or "" for c in chunks for ch in c["choices"])
    assert reasoning == "Let me think."
    assert text_of(chunks) == "Answer"


# failures --------------------------------------------------------------------------------------


def error_body(message: str, param: str | None = None, code: str | None = None) -> bytes:
    error = {"message": message, "type": "invalid_request_error", "param": param, "code": code}
    return json.dumps({"error": error}).encode()


def assert_error_shape(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) >= {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    return dict(error)


def test_upstream_400_is_passed_through_with_message_and_param(
    client: OpenAI, clean_upstream: OpenAIUpstream
) -> None:
    message = "Invalid 'messages[0].content': string too long."
    clean_upstream.enqueue(
        Reply(status=400, body=error_body(message, "messages[0].content", "string_above_max"))
    )
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=UPSTREAM_MODEL, messages=MESSAGES, stream=True)
    assert info.value.status_code == 400
    assert isinstance(info.value.body, dict) and info.value.body["message"] == message
    assert info.value.param == "messages[0].content"
    assert info.value.code == "string_above_max"


def test_upstream_401_is_a_502(gateway: Gateway, clean_upstream: OpenAIUpstream) -> None:
    clean_upstream.enqueue(Reply(status=401, body=error_body("Incorrect API key provided: upstream-secret")))
    error = assert_error_shape(post(gateway, {"stream": True}), 502)
    assert "upstream-secret" not in error["message"]
    assert error["type"] == "upstream_error"


def test_upstream_429_keeps_retry_after(gateway: Gateway, clean_upstream: OpenAIUpstream) -> None:
    clean_upstream.enqueue(
        Reply(status=429, body=error_body("Rate limit reached"), headers={"Retry-After": "7"})
    )
    response = post(gateway, {"stream": True})
    error = assert_error_shape(response, 429)
    assert response.headers["retry-after"] == "7"
    assert error["message"] == "Rate limit reached"


def test_upstream_429_via_the_sdk(client: OpenAI, clean_upstream: OpenAIUpstream) -> None:
    clean_upstream.enqueue(Reply(status=429, body=error_body("slow"), headers={"Retry-After": "7"}))
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model=UPSTREAM_MODEL, messages=MESSAGES)
    assert info.value.response.headers["retry-after"] == "7"


@pytest.mark.parametrize("stream", [True, False])
def test_upstream_500_is_a_502(gateway: Gateway, clean_upstream: OpenAIUpstream, stream: bool) -> None:
    clean_upstream.enqueue(Reply(status=500, body=b'{"error": {"message": "The server had an error"}}'))
    error = assert_error_shape(post(gateway, {"stream": stream}), 502)
    assert "500" in error["message"]


def test_upstream_unreachable_is_a_502(tmp_path: Path) -> None:
    closed = free_port()
    config = {
        "models": [
            {
                "name": "dead",
                "provider": "openai",
                "base_url": f"http://127.0.0.1:{closed}/v1",
                "api_key": "x",
                "connect_timeout_s": 2,
            }
        ]
    }
    server = start_gateway(tmp_path / "dead", config)
    try:
        for stream in (True, False):
            response = httpx.post(
                server.v1 + "/chat/completions",
                json={"model": "dead", "messages": MESSAGES, "stream": stream},
                headers={"Authorization": f"Bearer {server.api_key}"},
                timeout=15,
            )
            error = assert_error_shape(response, 502)
            assert error["type"] == "upstream_error"
            assert "`dead`" in error["message"]
            assert str(closed) not in error["message"], "the upstream's address stays private"
    finally:
        server.stop()


def test_upstream_closing_after_accepting_gives_an_error_event(
    gateway: Gateway, clean_upstream: OpenAIUpstream
) -> None:
    # The upstream said 200, so the stream has begun (role chunk sent): the failure is an event.
    clean_upstream.enqueue(Reply(chunks=[b": keep-alive\n\n"]))
    events = stream_events(gateway)
    assert events[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert events[-1]["error"]["type"] == "upstream_error"
    assert "closed the stream" in events[-1]["error"]["message"]


def test_first_bytes_leave_when_the_upstream_accepts_not_at_its_first_token(
    gateway: Gateway, clean_upstream: OpenAIUpstream
) -> None:
    clean_upstream.enqueue(Reply(chunks=[chunk("slow"), chunk(finish="stop"), DONE], delay_s=1.0))
    body = {"model": UPSTREAM_MODEL, "messages": MESSAGES, "stream": True}
    headers = {"Authorization": f"Bearer {gateway.api_key}"}
    started = time.monotonic()
    with httpx.stream("POST", gateway.v1 + "/chat/completions", json=body, headers=headers, timeout=15) as r:
        lines = r.iter_lines()
        first = next(line for line in lines if line.startswith("data: "))
        first_byte_s = time.monotonic() - started
        rest = [line for line in lines if line.startswith("data: ")]
    assert json.loads(first[6:])["choices"][0]["delta"]["role"] == "assistant"
    assert first_byte_s < 0.5, first_byte_s
    assert time.monotonic() - started > 1.0
    assert rest[-1] == "data: [DONE]"
    assert '"slow"' in rest[0]


def test_upstream_closing_mid_stream_gives_an_error_event_then_done(
    gateway: Gateway, clean_upstream: OpenAIUpstream
) -> None:
    clean_upstream.enqueue(Reply(chunks=[chunk(role="assistant", content=""), chunk("partial")]))
    events = stream_events(gateway)
    assert text_of(events[:-1]) == "partial"
    assert set(events[-1]) == {"error"}
    assert events[-1]["error"]["message"]
    assert events[-1]["error"]["type"] == "upstream_error"
    assert all(ch["finish_reason"] is None for c in events[:-1] for ch in c["choices"])


def test_upstream_error_event_mid_stream(gateway: Gateway, clean_upstream: OpenAIUpstream) -> None:
    upstream_error = {"error": {"message": "The model is overloaded", "type": "server_error"}}
    clean_upstream.enqueue(
        Reply(
            chunks=[chunk(role="assistant", content=""), chunk("so far"), sse(upstream_error), chunk("never")]
        )
    )
    events = stream_events(gateway)
    assert text_of(events[:-1]) == "so far"
    assert "overloaded" in events[-1]["error"]["message"]


def test_upstream_error_mid_stream_raises_in_the_sdk(client: OpenAI, clean_upstream: OpenAIUpstream) -> None:
    clean_upstream.enqueue(
        Reply(
            chunks=[chunk(role="assistant", content=""), chunk("so far"), sse({"error": {"message": "boom"}})]
        )
    )
    stream = client.chat.completions.create(model=UPSTREAM_MODEL, messages=MESSAGES, stream=True)
    seen: list[str] = []
    with pytest.raises(openai.APIError, match="boom"):
        for item in stream:
            seen.append(item.choices[0].delta.content or "")
    assert "".join(seen) == "so far"


def test_client_disconnect_closes_the_upstream_connection(
    gateway: Gateway, clean_upstream: OpenAIUpstream
) -> None:
    chunks = [chunk(role="assistant", content="")] + [chunk(f"w{i} ") for i in range(60)]
    clean_upstream.enqueue(Reply(chunks=[*chunks, chunk(finish="stop"), DONE], delay_s=0.2))
    body = {"model": UPSTREAM_MODEL, "messages": MESSAGES, "stream": True}
    headers = {"Authorization": f"Bearer {gateway.api_key}"}
    with httpx.stream("POST", gateway.v1 + "/chat/completions", json=body, headers=headers, timeout=15) as r:
        assert r.status_code == 200
        received: list[str] = []
        for line in r.iter_lines():
            if line.startswith("data: "):
                received.append(line)
            if len(received) == 2:
                break
    assert len(received) == 2
    assert clean_upstream.wait_for_disconnects(1, timeout=5)


# non-streaming ---------------------------------------------------------------------------------


def completion_body(choices: list[dict[str, Any]], usage: dict[str, Any] | None = None) -> bytes:
    body = {
        "id": "chatcmpl-up",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": choices,
        "usage": usage or {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
        "system_fingerprint": "fp_1",
    }
    return json.dumps(body).encode()


def test_non_streaming_text(client: OpenAI, clean_upstream: OpenAIUpstream) -> None:
    clean_upstream.enqueue(
        Reply(
            body=completion_body(
                [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "Hello!"},
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                ]
            )
        )
    )
    answer = client.chat.completions.create(model=UPSTREAM_MODEL, messages=MESSAGES, user="u1")
    assert answer.object == "chat.completion" and answer.model == UPSTREAM_MODEL
    assert answer.id.startswith("chatcmpl-")
    assert answer.choices[0].message.content == "Hello!"
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage is not None
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens, answer.usage.total_tokens) == (
        7,
        3,
        10,
    )
    [sent] = clean_upstream.requests
    assert sent["model"] == "gpt-4o-mini" and sent["stream"] is False and sent["user"] == "u1"
    assert "stream_options" not in sent


def test_non_streaming_tool_calls(client: OpenAI, clean_upstream: OpenAIUpstream) -> None:
    calls = [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
        },
        {
            "id": "call_2",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Nice"}'},
        },
    ]
    clean_upstream.enqueue(
        Reply(
            body=completion_body(
                [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": None, "tool_calls": calls},
                        "logprobs": None,
                        "finish_reason": "tool_calls",
                    }
                ]
            )
        )
    )
    answer = client.chat.completions.create(model=UPSTREAM_MODEL, messages=MESSAGES, tools=TOOLS)
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    got = [(c.id, c.type, c.function.name, c.function.arguments) for c in choice.message.tool_calls or []]
    assert got == [(c["id"], "function", c["function"]["name"], c["function"]["arguments"]) for c in calls]


def test_non_streaming_n_choices_and_usage_details(client: OpenAI, clean_upstream: OpenAIUpstream) -> None:
    usage = {
        "prompt_tokens": 5,
        "completion_tokens": 4,
        "total_tokens": 9,
        "completion_tokens_details": {"reasoning_tokens": 2},
    }
    clean_upstream.enqueue(
        Reply(
            body=completion_body(
                [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "one"},
                        "logprobs": None,
                        "finish_reason": "stop",
                    },
                    {
                        "index": 1,
                        "message": {"role": "assistant", "content": "two"},
                        "logprobs": None,
                        "finish_reason": "length",
                    },
                ],
                usage,
            )
        )
    )
    answer = client.chat.completions.create(model=UPSTREAM_MODEL, messages=MESSAGES, n=2)
    assert [(c.index, c.message.content, c.finish_reason) for c in answer.choices] == [
        (0, "one", "stop"),
        (1, "two", "length"),
    ]
    assert answer.usage is not None and answer.usage.completion_tokens_details is not None
    assert answer.usage.completion_tokens_details.reasoning_tokens == 2


# upstream behaviour beyond the happy path ------------------------------------------------------


def test_upstream_answering_json_to_a_stream_request_is_streamed(
    gateway: Gateway, clean_upstream: OpenAIUpstream
) -> None:
    whole = completion_body(
        [{"index": 0, "message": {"role": "assistant", "content": "all at once"}, "finish_reason": "stop"}],
        usage={"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5},
    )
    clean_upstream.enqueue(Reply(body=whole))
    events = stream_events(gateway, stream_options={"include_usage": True})
    assert_openai_shaped(events, include_usage=True)
    assert text_of(events) == "all at once"
    assert finishes(events) == {0: ["stop"]}
    assert events[-1]["usage"]["total_tokens"] == 5


def test_client_leaving_before_the_first_token_closes_the_upstream(
    gateway: Gateway, clean_upstream: OpenAIUpstream
) -> None:
    clean_upstream.enqueue(Reply(chunks=[chunk("late"), chunk(finish="stop"), DONE], delay_s=3))
    body = {"model": UPSTREAM_MODEL, "messages": MESSAGES, "stream": True}
    headers = {"Authorization": f"Bearer {gateway.api_key}"}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(gateway.v1 + "/chat/completions", json=body, headers=headers, timeout=0.5)
    assert clean_upstream.wait_for_disconnects(1, timeout=2)


def test_a_silent_upstream_times_out_with_an_error_event(
    tmp_path: Path, clean_upstream: OpenAIUpstream
) -> None:
    config = {
        "models": [
            {
                "name": "slow",
                "provider": "openai",
                "base_url": clean_upstream.base_url,
                "read_timeout_s": 0.5,
            }
        ]
    }
    server = start_gateway(tmp_path, config)
    try:
        clean_upstream.enqueue(
            Reply(chunks=[chunk(role="assistant", content=""), chunk("then silence")], hang_after=True)
        )
        events = stream_events(server, model="slow")
        assert text_of(events[:-1]) == "then silence"
        assert events[-1]["error"]["code"] == "upstream_timeout"
        clean_upstream.enqueue(Reply(chunks=[], hang_after=True))
        events = stream_events(server, model="slow")
        assert events[-1]["error"]["code"] == "upstream_timeout"
        clean_upstream.enqueue(Reply(chunks=[], hang_after=True))
        response = post(server, {"model": "slow", "stream": False})
        assert_error_shape(response, 504)
    finally:
        server.stop()
