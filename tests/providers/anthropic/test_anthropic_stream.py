"""Anthropic Messages stream events -> canonical events, mapping by mapping, and the same
events whatever the network does to the bytes (any split, CRLF or LF framing)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from sluicegate.core.events import (
    BlockEnd,
    Event,
    Finish,
    Metadata,
    ReasoningDelta,
    RefusalDelta,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from sluicegate.errors import ServiceUnavailableError, UpstreamError
from sluicegate.http.sse import SSEDecoder
from sluicegate.providers.anthropic.provider import _parse
from sluicegate.providers.anthropic.stream import MessageStreamParser
from tests.conftest import SHARED_FIXTURES
from tests.support.anthropic_upstream import event, recording


def start(usage: dict[str, Any] | None = None, **message: Any) -> dict[str, Any]:
    body = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-x",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": usage or {"input_tokens": 10, "output_tokens": 1},
        **message,
    }
    return {"type": "message_start", "message": body}


def block(index: int, **content_block: Any) -> dict[str, Any]:
    return {"type": "content_block_start", "index": index, "content_block": content_block}


def delta(index: int, **payload: Any) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": index, "delta": payload}


def text(index: int, value: str) -> dict[str, Any]:
    return delta(index, type="text_delta", text=value)


def stop(index: int) -> dict[str, Any]:
    return {"type": "content_block_stop", "index": index}


def end(reason: str = "end_turn", usage: dict[str, Any] | None = None, **fields: Any) -> list[dict[str, Any]]:
    message_delta = {
        "type": "message_delta",
        "delta": {"stop_reason": reason, "stop_sequence": None, **fields},
        "usage": usage or {"output_tokens": 5},
    }
    return [message_delta, {"type": "message_stop"}]


def parse(payloads: list[dict[str, Any]]) -> list[Event]:
    parser = MessageStreamParser("claude-test")
    events: list[Event] = []
    for payload in payloads:
        parser.parse(payload, events)
    return events + parser.close()


def of(kind: type[Any], events: list[Event]) -> list[Any]:
    return [item for item in events if isinstance(item, kind)]


def test_text_deltas_metadata_finish_and_usage() -> None:
    events = parse(
        [
            start(),
            block(0, type="text", text=""),
            {"type": "ping"},
            text(0, "Hel"),
            text(0, "lo"),
            stop(0),
            *end(),
        ]
    )
    assert events == [
        Metadata(upstream_id="msg_1"),
        TextDelta("Hel"),
        TextDelta("lo"),
        BlockEnd(),
        Finish("stop", native="end_turn"),
        Usage(10, 5, {"prompt_tokens_details": {"cached_tokens": 0}}),
    ]
    assert events[4].native == "end_turn"  # type: ignore[union-attr]


def test_thinking_signature_and_redacted_thinking() -> None:
    events = parse(
        [
            start(),
            block(0, type="thinking", thinking="", signature=""),
            delta(0, type="thinking_delta", thinking="Let me think."),
            delta(0, type="thinking_delta", thinking=""),
            delta(0, type="signature_delta", signature="EqQBsig=="),
            stop(0),
            block(1, type="redacted_thinking", data="opaque-data"),
            stop(1),
            block(2, type="text", text=""),
            text(2, "Answer"),
            stop(2),
            *end(),
        ]
    )
    assert events[1:8] == [
        ReasoningDelta("Let me think."),
        ReasoningDelta("", signature="EqQBsig=="),
        BlockEnd(),
        ReasoningDelta("", redacted="opaque-data"),
        BlockEnd(),
        TextDelta("Answer"),
        BlockEnd(),
    ]


def test_tool_calls_get_one_index_each_with_id_and_name_once() -> None:
    events = parse(
        [
            start(),
            block(0, type="text", text=""),
            text(0, "Checking."),
            stop(0),
            block(1, type="tool_use", id="toolu_a", name="get_weather", input={}),
            delta(1, type="input_json_delta", partial_json=""),
            delta(1, type="input_json_delta", partial_json='{"city": "Pa'),
            delta(1, type="input_json_delta", partial_json='ris"}'),
            stop(1),
            block(2, type="tool_use", id="toolu_b", name="get_time", input={}),
            delta(2, type="input_json_delta", partial_json='{"tz": "CET"}'),
            stop(2),
            *end("tool_use"),
        ]
    )
    assert of(ToolCallDelta, events) == [
        ToolCallDelta(0, "", "toolu_a", "get_weather"),
        ToolCallDelta(0, '{"city": "Pa'),
        ToolCallDelta(0, 'ris"}'),
        ToolCallDelta(1, "", "toolu_b", "get_time"),
        ToolCallDelta(1, '{"tz": "CET"}'),
    ]
    assert of(Finish, events) == [Finish("tool_calls")]


def test_a_tool_call_without_arguments_still_gets_valid_json() -> None:
    events = parse(
        [
            start(),
            block(0, type="tool_use", id="toolu_a", name="refresh", input={}),
            delta(0, type="input_json_delta", partial_json=""),
            stop(0),
            *end("tool_use"),
        ]
    )
    calls = of(ToolCallDelta, events)
    assert calls == [ToolCallDelta(0, "", "toolu_a", "refresh"), ToolCallDelta(0, "{}")]


def test_a_tool_call_whose_input_comes_whole_in_its_start() -> None:
    events = parse(
        [
            start(),
            block(0, type="tool_use", id="toolu_a", name="roll", input={"player": "p1"}),
            stop(0),
            *end("tool_use"),
        ]
    )
    assert "".join(call.arguments for call in of(ToolCallDelta, events)) == '{"player":"p1"}'


def test_server_tool_blocks_are_skipped_and_do_not_take_a_tool_index() -> None:
    events = parse(
        [
            start(),
            block(0, type="server_tool_use", id="srvtoolu_1", name="web_search", input={}),
            delta(0, type="input_json_delta", partial_json='{"query": "x"}'),
            stop(0),
            block(
                1,
                type="web_search_tool_result",
                tool_use_id="srvtoolu_1",
                content=[{"type": "web_search_result"}],
            ),
            stop(1),
            block(2, type="text", text=""),
            text(2, "Found it"),
            delta(
                2, type="citations_delta", citation={"type": "web_search_result_location", "url": "https://x"}
            ),
            stop(2),
            block(3, type="tool_use", id="toolu_a", name="save", input={}),
            delta(3, type="input_json_delta", partial_json="{}"),
            stop(3),
            block(4, type="a_block_from_the_future", x=1),
            delta(4, type="a_delta_from_the_future", y=2),
            stop(4),
            *end("tool_use"),
        ]
    )
    assert events[1:] == [
        TextDelta("Found it"),
        BlockEnd(),
        ToolCallDelta(0, "", "toolu_a", "save"),
        ToolCallDelta(0, "{}"),
        BlockEnd(),
        Finish("tool_calls"),
        Usage(10, 5, {"prompt_tokens_details": {"cached_tokens": 0}}),
    ]


@pytest.mark.parametrize(
    ("native", "reason"),
    [
        ("end_turn", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("refusal", "content_filter"),
        ("pause_turn", "stop"),
        ("a_reason_from_the_future", "stop"),
        ("tool_use", "stop"),  # only server tools ran: nothing for the client to call
    ],
)
def test_stop_reasons(native: str, reason: str) -> None:
    finishes = of(Finish, parse([start(), *end(native)]))
    assert finishes == [Finish(reason)]
    assert finishes[0].native == native


def test_a_stop_sequence_is_named() -> None:
    events = parse([start(), *end("stop_sequence", stop_sequence="END")])
    assert of(Finish, events) == [Finish("stop", stop_sequence="END")]


def test_a_refusal_explanation_becomes_the_refusal_text() -> None:
    details = {"type": "refusal", "category": "cyber", "explanation": "This request was refused."}
    events = parse([start(), *end("refusal", stop_details=details)])
    assert events[-3:-1] == [RefusalDelta("This request was refused."), Finish("content_filter")]
    # a client of Anthropic's own format gets stop_details, not an extra text
    parser, quiet = MessageStreamParser("c", explain_refusals=False), []
    for payload in [start(), *end("refusal", stop_details=details)]:
        parser.parse(payload, quiet)
    assert not of(RefusalDelta, quiet) and of(Finish, quiet) == [Finish("content_filter")]


def test_usage_counts_cache_reads_and_writes_in_the_prompt() -> None:
    usage_start = {
        "input_tokens": 12,
        "cache_read_input_tokens": 100,
        "cache_creation_input_tokens": 30,
        "output_tokens": 1,
    }
    usage = of(Usage, parse([start(usage_start), *end(usage={"output_tokens": 40})]))[0]
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (142, 40, 182)
    assert (usage.cached_tokens, usage.cache_creation_tokens) == (100, 30)
    assert usage.to_dict()["prompt_tokens_details"] == {"cached_tokens": 100}


def test_message_delta_usage_overrides_message_start_field_by_field() -> None:
    final = {"input_tokens": 61, "output_tokens": 2, "output_tokens_details": {"thinking_tokens": 1}}
    usage = of(Usage, parse([start({"input_tokens": 43, "cache_read_input_tokens": 7}), *end(usage=final)]))[
        0
    ]
    assert (usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens) == (68, 2, 7)
    assert usage.reasoning_tokens == 1
    assert usage.to_dict()["completion_tokens_details"] == {"reasoning_tokens": 1}


def test_an_error_event_mid_stream_raises_after_the_events_before_it() -> None:
    sse = SSEDecoder().feed(
        event(start())
        + event(block(0, type="text", text=""))
        + event(text(0, "Par"))
        + event({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    )
    batch, error = _parse(sse, MessageStreamParser("claude-test"), "claude-test")
    assert batch == [Metadata(upstream_id="msg_1"), TextDelta("Par")]
    assert isinstance(error, ServiceUnavailableError)  # the Messages door says overloaded_error
    assert "overloaded_error" in error.message and "claude-test" in error.message
    assert "Overloaded" not in error.message  # Anthropic's words go to the log


def test_a_stream_cut_before_its_stop_reason_is_an_upstream_error() -> None:
    parser = MessageStreamParser("claude-test")
    parser.parse(start(), [])
    with pytest.raises(UpstreamError, match="closed the stream before it finished"):
        parser.close()


def test_a_stream_cut_only_before_message_stop_is_finished() -> None:
    parser = MessageStreamParser("claude-test")
    events: list[Event] = []
    for payload in [start(), end()[0]]:
        parser.parse(payload, events)
    assert of(Finish, parser.close()) == [Finish("stop")]


def test_malformed_data_is_the_upstreams_failure() -> None:
    sse = SSEDecoder().feed(b"event: message_start\ndata: {not json\n\n")
    _, error = _parse(sse, MessageStreamParser("claude-test"), "claude-test")
    assert isinstance(error, UpstreamError)
    with pytest.raises(UpstreamError):
        MessageStreamParser().parse([1, 2], [])


# -- the bytes on the wire -------------------------------------------------------------------

TRICKY = [
    start(),
    block(0, type="thinking", thinking="", signature=""),
    delta(0, type="thinking_delta", thinking="Über-think: 日本語 🤔"),
    delta(0, type="signature_delta", signature="c2ln"),
    stop(0),
    block(1, type="text", text=""),
    text(1, "Crème brûlée — "),
    text(1, "🍮 done\n\nnext"),
    stop(1),
    block(2, type="tool_use", id="toolu_é", name="note", input={}),
    delta(2, type="input_json_delta", partial_json='{"text": "na'),
    delta(2, type="input_json_delta", partial_json='ïve ✓", "n": 1}'),
    stop(2),
    *end("tool_use"),
]


def decode(pieces: list[bytes]) -> list[Event]:
    decoder, parser = SSEDecoder(), MessageStreamParser("claude-test")
    events: list[Event] = []
    for piece in pieces:
        for sse in decoder.feed(piece):
            parser.parse(orjson.loads(sse.data), events)
    for sse in decoder.flush():
        parser.parse(orjson.loads(sse.data), events)
    return events + parser.close()


@pytest.mark.parametrize("newline", [b"\n", b"\r\n"], ids=["LF", "CRLF"])
def test_every_split_of_the_bytes_gives_the_same_events(newline: bytes) -> None:
    wire = b"".join(event(payload, newline) for payload in TRICKY)
    expected = decode([wire])
    assert "".join(t.text for t in of(TextDelta, expected)) == "Crème brûlée — 🍮 done\n\nnext"
    assert orjson.loads("".join(c.arguments for c in of(ToolCallDelta, expected))) == {
        "text": "naïve ✓",
        "n": 1,
    }
    assert expected == decode([b"".join(event(payload) for payload in TRICKY)]), "CRLF reads as LF"
    for cut in range(1, len(wire)):
        assert decode([wire[:cut], wire[cut:]]) == expected, f"split at byte {cut}"
    assert decode([wire[i : i + 1] for i in range(len(wire))]) == expected, "one byte per read"


def test_a_recorded_stream_split_at_every_byte_gives_the_same_events() -> None:
    path = SHARED_FIXTURES / "anthropic-sdk-python" / "tool_use_response.txt"
    if not path.is_file():
        pytest.skip("../shared/fixtures is not present")
    (answer,) = recording(path)
    wire = b"".join(answer)
    expected = decode([wire])
    assert of(ToolCallDelta, expected) and of(TextDelta, expected)
    for cut in range(1, len(wire)):
        assert decode([wire[:cut], wire[cut:]]) == expected, f"split at byte {cut}"
    crlf = wire.replace(b"\n", b"\r\n")
    for cut in range(1, len(crlf), 7):
        assert decode([crlf[:cut], crlf[cut:]]) == expected, f"CRLF split at byte {cut}"
