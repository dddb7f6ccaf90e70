"""Canonical events -> Anthropic's Messages stream: the event order, every field, the stop
reasons, usage, block boundaries and failures; and the same bytes Anthropic itself sent for the
same content (recorded streams from Anthropic's SDK repository)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from sluicegate.api.messages.stream import MessageStreamEncoder
from sluicegate.core.events import (
    Batch,
    BlockEnd,
    Finish,
    Metadata,
    Passthrough,
    ReasoningDelta,
    RefusalDelta,
    Started,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from sluicegate.errors import (
    GatewayError,
    RateLimitError,
    ServiceUnavailableError,
    UpstreamError,
    UpstreamTimeoutError,
)
from tests.support.anthropic_wire import blocks_of, check_sequence, parse_events

Events = list[tuple[str, dict[str, Any]]]


def encode(*batches: Batch, started: Started | None = None, fail: GatewayError | None = None) -> bytes:
    encoder = MessageStreamEncoder("msg_test", "some-model")
    out = encoder.open(started or Started())
    for batch in batches:
        out += encoder.encode_batch(batch)
    return out + (encoder.fail(fail) if fail is not None else encoder.close())


def events_of(*batches: Batch, **kwargs: Any) -> Events:
    events = parse_events(encode(*batches, **kwargs))
    check_sequence(events)
    return events


def test_a_text_answer_is_exactly_anthropics_sequence_field_by_field() -> None:
    events = events_of(
        [Started(prompt_tokens=11), TextDelta("Hello"), TextDelta(" there")],
        [TextDelta("!"), Finish("stop")],
        [Usage(prompt_tokens=11, completion_tokens=6)],
        started=Started(prompt_tokens=11),
    )
    assert events == [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": "msg_test",
                    "type": "message",
                    "role": "assistant",
                    "model": "some-model",
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": 11, "output_tokens": 0},
                },
            },
        ),
        ("ping", {"type": "ping"}),
        (
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        ),
        (
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}},
        ),
        (
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": " there"}},
        ),
        (
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "!"}},
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {
                    "input_tokens": 11,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": 0,
                    "output_tokens": 6,
                },
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]


def test_message_start_carries_the_prompt_tokens_known_at_start_or_zero() -> None:
    assert events_of([], started=Started(prompt_tokens=42))[0][1]["message"]["usage"]["input_tokens"] == 42
    assert events_of([])[0][1]["message"]["usage"]["input_tokens"] == 0


def test_blocks_change_with_the_kind_of_content_and_with_each_tool_call() -> None:
    events = events_of(
        [ReasoningDelta("Let me think."), ReasoningDelta(" Done.", signature=None)],
        [ReasoningDelta("", signature="sig-abc")],
        [TextDelta("I'll look it up.")],
        [ToolCallDelta(0, "", id="call_1", name="get_weather"), ToolCallDelta(0, '{"city": "Pa')],
        [ToolCallDelta(0, 'ris"}')],
        [ToolCallDelta(1, '{"city": "Rome"}', id="call_2", name="get_weather")],
        [Finish("tool_calls"), Usage(20, 30)],
    )
    starts = [data["content_block"] for name, data in events if name == "content_block_start"]
    assert [block["type"] for block in starts] == ["thinking", "text", "tool_use", "tool_use"]
    assert starts[2] == {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {}}
    assert starts[3]["id"] == "call_2"
    assert blocks_of(events) == [
        {"type": "thinking", "thinking": "Let me think. Done.", "signature": "sig-abc"},
        {"type": "text", "text": "I'll look it up."},
        {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {"city": "Rome"}},
    ]
    deltas = [data["delta"] for name, data in events if name == "content_block_delta"]
    assert {"type": "signature_delta", "signature": "sig-abc"} in deltas
    assert {"type": "input_json_delta", "partial_json": '{"city": "Pa'} in deltas
    assert {"type": "input_json_delta", "partial_json": ""} not in deltas  # empty fragments are not sent
    assert events[-2][1]["delta"] == {"stop_reason": "tool_use", "stop_sequence": None}


def test_block_end_closes_the_block_and_new_thinking_after_a_signature_opens_another() -> None:
    events = events_of(
        [TextDelta("one"), BlockEnd(), TextDelta("two")],
        [ReasoningDelta("a", signature="s1"), ReasoningDelta("b"), BlockEnd(), BlockEnd()],
        [Finish("stop")],
    )
    assert [b.get("text") or b.get("thinking") for b in blocks_of(events)] == ["one", "two", "a", "b"]
    assert [b.get("signature") for b in blocks_of(events)][2:] == ["s1", ""]


def test_a_tool_call_without_an_id_gets_an_anthropic_style_one() -> None:
    events = events_of([ToolCallDelta(0, "{}", name="ping")], [Finish("tool_calls")])
    block = next(data["content_block"] for name, data in events if name == "content_block_start")
    assert block["id"].startswith("toolu_") and len(block["id"]) == len("toolu_") + 24


def test_redacted_thinking_is_a_block_of_its_own() -> None:
    events = events_of([ReasoningDelta("", redacted="opaque=="), TextDelta("Hi"), Finish("stop")])
    assert blocks_of(events) == [
        {"type": "redacted_thinking", "data": "opaque=="},
        {"type": "text", "text": "Hi"},
    ]


def test_refusal_text_is_text_and_the_stop_reason_is_refusal() -> None:
    events = events_of([RefusalDelta("I can't help with that."), Finish("content_filter")])
    assert blocks_of(events) == [{"type": "text", "text": "I can't help with that."}]
    assert events[-2][1]["delta"]["stop_reason"] == "refusal"


def test_what_anthropic_cannot_carry_sends_nothing() -> None:
    quiet = [
        Metadata(system_fingerprint="fp"),
        Passthrough({"annotations": []}),
        TextDelta(""),
        Started(),
        Usage(1, 1),
        Finish("stop"),
    ]
    encoder = MessageStreamEncoder("msg_x", "m")
    encoder.open(Started())
    assert encoder.encode_batch(quiet) == b""


@pytest.mark.parametrize(
    ("finish", "stop_reason", "stop_sequence"),
    [
        (Finish("stop"), "end_turn", None),
        (Finish("stop", stop_sequence="\n\nHuman:"), "stop_sequence", "\n\nHuman:"),
        (Finish("length"), "max_tokens", None),
        (Finish("tool_calls"), "tool_use", None),
        (Finish("function_call"), "tool_use", None),
        (Finish("content_filter"), "refusal", None),
        (Finish("stop", native="pause_turn"), "pause_turn", None),
        (Finish("stop", native="end_turn"), "end_turn", None),
        (Finish("stop", native="stop_sequence", stop_sequence="END"), "stop_sequence", "END"),
        (Finish("length", native="model_context_window_exceeded"), "model_context_window_exceeded", None),
        (Finish("content_filter", native="SAFETY"), "refusal", None),  # Gemini's word: not Anthropic's
        (Finish("stop", native="eos"), "end_turn", None),
    ],
)
def test_stop_reasons(finish: Finish, stop_reason: str, stop_sequence: str | None) -> None:
    events = events_of([TextDelta("x"), finish])
    assert events[-2][1]["delta"] == {"stop_reason": stop_reason, "stop_sequence": stop_sequence}


def test_without_a_finish_the_stop_reason_follows_the_content() -> None:
    assert events_of([TextDelta("x")])[-2][1]["delta"]["stop_reason"] == "end_turn"
    assert events_of([ToolCallDelta(0, "{}", "c", "f")])[-2][1]["delta"]["stop_reason"] == "tool_use"


def test_cache_usage_is_split_out_of_the_prompt_tokens() -> None:
    usage = Usage(prompt_tokens=1000, completion_tokens=50, cached_tokens=600, cache_creation_tokens=300)
    events = events_of([TextDelta("x"), Finish("stop"), usage])
    assert events[-2][1]["usage"] == {
        "input_tokens": 100,
        "cache_creation_input_tokens": 300,
        "cache_read_input_tokens": 600,
        "output_tokens": 50,
    }


def test_without_usage_output_tokens_are_estimated_and_input_comes_from_the_start() -> None:
    events = events_of([TextDelta("x" * 40), Finish("stop")], started=Started(prompt_tokens=7))
    assert events[-2][1]["usage"] == {"output_tokens": 10, "input_tokens": 7}
    assert events_of([TextDelta("abc")])[-2][1]["usage"] == {"output_tokens": 1}


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (UpstreamError("The upstream of `m` closed the stream before it finished."), "api_error"),
        (UpstreamTimeoutError("The upstream of `m` did not answer in time."), "timeout_error"),
        (RateLimitError("slow down"), "rate_limit_error"),
        (ServiceUnavailableError("busy"), "overloaded_error"),
        (GatewayError("The gateway failed mid-stream (KeyError)."), "api_error"),
    ],
)
def test_a_failure_after_the_first_byte_is_an_error_event_and_nothing_after(
    error: GatewayError, kind: str
) -> None:
    raw = encode([TextDelta("Hel")], [ToolCallDelta(0, "{", "c", "f")], fail=error)
    events = parse_events(raw)
    check_sequence(events)
    assert events[-1] == ("error", {"type": "error", "error": {"type": kind, "message": error.message}})
    assert raw.endswith(b"\n\n") and raw.count(b"event: error") == 1
    assert "message_delta" not in [name for name, _ in events]


# --- the same content as Anthropic's own recorded streams gives the same events ---------------

RECORDED = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "anthropic-sdk-python"


def recorded(name: str) -> Events:
    path = RECORDED / name
    if not path.is_file():
        pytest.skip("../shared/fixtures is not present")
    return parse_events(path.read_bytes().strip() + b"\n\n")


def canonical(events: Events) -> list[Batch]:
    """What a provider reading Anthropic's stream hands the door: one batch per event."""
    batches: list[Batch] = []
    tool_index = -1
    for name, data in events:
        if name == "content_block_start" and data["content_block"]["type"] == "tool_use":
            tool_index += 1
            block = data["content_block"]
            batches.append([ToolCallDelta(tool_index, "", id=block["id"], name=block["name"])])
        elif name == "content_block_delta":
            delta = data["delta"]
            if delta["type"] == "text_delta":
                batches.append([TextDelta(delta["text"])])
            elif delta["type"] == "input_json_delta":
                batches.append([ToolCallDelta(tool_index, delta["partial_json"])])
        elif name == "content_block_stop":
            batches.append([BlockEnd()])
        elif name == "message_delta":
            reason = {"tool_use": "tool_calls", "max_tokens": "length"}.get(
                data["delta"]["stop_reason"], "stop"
            )
            batches.append([Finish(reason, native=data["delta"]["stop_reason"])])
    return batches


def comparable(events: Events) -> list[Any]:
    """Events as compared with Anthropic's: pings (placed by timing) and fields that name the
    message or the model, or count tokens before generation, left out."""
    out: list[Any] = []
    for name, data in events:
        if name == "ping":
            continue
        if name == "message_start":
            message = {k: v for k, v in data["message"].items() if k not in ("id", "model", "usage")}
            out.append((name, message))
        elif name == "message_delta":
            out.append((name, data["delta"]))
        elif name == "content_block_start":
            block = {k: v for k, v in data["content_block"].items() if k != "caller"}  # a newer beta field
            out.append((name, data["index"], block))
        else:
            out.append((name, orjson.loads(orjson.dumps(data))))
    return out


@pytest.mark.parametrize("name", ["basic_response.txt", "tool_use_response.txt"])
def test_the_same_content_gives_the_events_anthropic_sent(name: str) -> None:
    theirs = recorded(name)
    ours = events_of(*canonical(theirs))
    expected = comparable(theirs)
    # Anthropic sends an empty `input_json_delta` right after a tool_use start; the gateway
    # sends no empty fragments (clients accumulate the same input).
    expected = [
        e for e in expected if not (e[0] == "content_block_delta" and e[1]["delta"].get("partial_json") == "")
    ]
    assert comparable(ours) == expected
