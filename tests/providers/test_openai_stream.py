"""The `openai` provider streaming through a live gateway: OpenAI's exact shape, tool calls,
several choices and the quirks of real upstreams. Raw httpx where the bytes matter, the SDK where a
client's view matters."""

from __future__ import annotations

import json
from typing import Any

from openai import OpenAI

from tests.conftest import UPSTREAM_MODEL
from tests.support.openai_calls import (
    DONE,
    MESSAGES,
    TOOLS,
    assert_openai_shaped,
    completion_body,
    finishes,
    raw_chunk,
    stream_events,
    text_of,
    text_reply,
    tool_delta,
    usage_chunk,
)
from tests.support.openai_upstream import OpenAIUpstream, Reply, chunk
from tests.support.server import Gateway

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
