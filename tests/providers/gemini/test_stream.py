"""The Gemini stream parser: every mapping of a `GenerateContentResponse` event, and the same
result however the bytes are cut across network reads (JSON and UTF-8 split, CRLF or LF)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest

from sluicegate.core.completion import fold_events
from sluicegate.core.events import (
    Event,
    Finish,
    Metadata,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from sluicegate.errors import InvalidRequestError, RateLimitError, UpstreamError
from sluicegate.http.sse import SSEDecoder
from sluicegate.providers.gemini.stream import StreamParser, parse_usage
from tests.support.gemini_upstream import frame, recording_lines


def candidate(*parts: dict[str, Any], finish: str | None = None, index: int | None = 0) -> dict[str, Any]:
    out: dict[str, Any] = {"content": {"parts": list(parts), "role": "model"}}
    if index is not None:
        out["index"] = index
    if finish:
        out["finishReason"] = finish
    return out


def event(*candidates: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"candidates": list(candidates), **extra}


def parse_all(*events: dict[str, Any]) -> list[Event]:
    parser = StreamParser("gem")
    out: list[Event] = []
    for item in events:
        out += parser.parse(item)
    return out + parser.close()


# text, thoughts, signatures ------------------------------------------------------------------


def test_text_parts_become_content_and_stop_finishes() -> None:
    events = parse_all(
        event(candidate({"text": "Hel"}, {"text": "lo"})),
        event(candidate({"text": " wörld"}, finish="STOP")),
    )
    assert events == [TextDelta("Hel"), TextDelta("lo"), TextDelta(" wörld"), Finish("stop", native="STOP")]
    assert events[-1].native == "STOP"  # type: ignore[union-attr]


def test_thought_parts_become_reasoning_with_their_signature() -> None:
    events = parse_all(
        event(candidate({"text": "Let me count.", "thought": True})),
        event(candidate({"text": "", "thought": True, "thoughtSignature": "c2ln"})),
        event(candidate({"text": "Three."}, finish="STOP")),
    )
    assert events[:3] == [
        ReasoningDelta("Let me count."),
        ReasoningDelta("", signature="c2ln"),
        TextDelta("Three."),
    ]


def test_a_signature_on_a_text_part_is_kept_beside_the_text() -> None:
    events = parse_all(event(candidate({"text": "ok", "thoughtSignature": "c2ln"}, finish="STOP")))
    assert events[:2] == [TextDelta("ok"), ReasoningDelta("", signature="c2ln")]
    assert fold_events(events).choices[0].reasoning_signature == "c2ln"


def test_empty_text_parts_say_nothing() -> None:
    assert parse_all(event(candidate({"text": ""}, finish="STOP"))) == [Finish("stop", native="STOP")]


def test_response_id_is_metadata_once() -> None:
    events = parse_all(
        event(candidate({"text": "a"}), responseId="r1"),
        event(candidate({"text": "b"}, finish="STOP"), responseId="r1"),
    )
    assert [e for e in events if isinstance(e, Metadata)] == [Metadata(upstream_id="r1")]
    assert isinstance(events[0], Metadata)


# function calls --------------------------------------------------------------------------------


def test_a_whole_function_call_is_one_delta_with_id_name_and_arguments() -> None:
    events = parse_all(
        event(
            candidate(
                {"functionCall": {"name": "weather", "args": {"city": "Zürich"}}, "thoughtSignature": "c2ln"}
            )
        ),
        event(candidate({"text": ""}, finish="STOP")),
    )
    call, finish = events
    assert isinstance(call, ToolCallDelta) and call.index == 0 and call.name == "weather"
    assert call.id is not None and call.id.startswith("call_") and len(call.id) <= 40
    assert json.loads(call.arguments) == {"city": "Zürich"}
    assert call.extra == {"extra_content": {"google": {"thought_signature": "c2ln"}}}
    assert finish == Finish("tool_calls", native="STOP")


def test_a_call_without_args_has_empty_object_arguments() -> None:
    [call, _] = parse_all(event(candidate({"functionCall": {"name": "now"}}, finish="STOP")))
    assert isinstance(call, ToolCallDelta) and call.arguments == "{}" and call.extra is None


def test_parallel_calls_across_events_get_one_index_each_and_distinct_ids() -> None:
    events = parse_all(
        event(candidate({"functionCall": {"name": "a", "args": {"x": 1}}})),
        event(
            candidate(
                {"functionCall": {"name": "b", "args": {}}}, {"functionCall": {"name": "c", "args": {}}}
            )
        ),
        event(candidate({"text": ""}, finish="STOP")),
    )
    calls = [e for e in events if isinstance(e, ToolCallDelta)]
    assert [(c.index, c.name) for c in calls] == [(0, "a"), (1, "b"), (2, "c")]
    assert len({c.id for c in calls}) == 3


def test_streamed_arguments_are_rebuilt_and_sent_whole_when_the_call_closes() -> None:
    def piece(path: str, more: bool = True, **value: Any) -> dict[str, Any]:
        item: dict[str, Any] = {"jsonPath": path, **value}
        if more:
            item["willContinue"] = True
        return {"functionCall": {"partialArgs": [item], "willContinue": True}}

    events = parse_all(
        event(
            candidate({"functionCall": {"name": "cook", "willContinue": True}, "thoughtSignature": "c2ln"})
        ),
        event(candidate(piece("$.recipe.steps[0]", stringValue="Heat the "))),
        event(candidate(piece("$.recipe.steps[0]", stringValue="oven."))),
        event(candidate(piece("$.recipe.steps[0]", more=False, stringValue=""))),
        event(candidate({"functionCall": {"willContinue": True}})),
        event(candidate(piece("$.recipe['oven temp']", more=False, numberValue=190))),
        event(candidate(piece("$.recipe.vegan", more=False, boolValue=False))),
        event(candidate(piece("$.recipe.note", more=False, nullValue=None))),
        event(candidate({"functionCall": {}})),
        event(candidate({"functionCall": {"name": "serve"}})),
        event(candidate({"text": ""}, finish="STOP")),
    )
    calls = [e for e in events if isinstance(e, ToolCallDelta)]
    opening, arguments, second = calls
    assert (opening.index, opening.name, opening.arguments) == (0, "cook", "")
    assert opening.id and opening.extra == {"extra_content": {"google": {"thought_signature": "c2ln"}}}
    assert (arguments.index, arguments.id, arguments.name) == (0, None, None)
    assert json.loads(arguments.arguments) == {
        "recipe": {"steps": ["Heat the oven."], "oven temp": 190, "vegan": False, "note": None}
    }
    assert (second.index, second.name, second.arguments) == (1, "serve", "{}")
    assert events[-1] == Finish("tool_calls", native="STOP")


def test_a_streamed_call_without_its_closing_piece_closes_at_the_finish() -> None:
    events = parse_all(
        event(candidate({"functionCall": {"name": "f", "willContinue": True}})),
        event(
            candidate(
                {
                    "functionCall": {
                        "partialArgs": [{"jsonPath": "$.n", "numberValue": 2}],
                        "willContinue": True,
                    }
                }
            )
        ),
        event(candidate({"text": ""}, finish="MAX_TOKENS")),
    )
    assert [e.arguments for e in events if isinstance(e, ToolCallDelta)] == ["", '{"n":2}']
    assert events[-1] == Finish("tool_calls", native="MAX_TOKENS")


def test_arguments_outside_any_call_are_the_upstreams_fault() -> None:
    parser = StreamParser("gem")
    with pytest.raises(UpstreamError, match="outside a call"):
        parser.parse(
            event(candidate({"functionCall": {"partialArgs": [{"jsonPath": "$.x", "numberValue": 1}]}}))
        )


# finish reasons ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("native", "reason"),
    [
        ("STOP", "stop"),
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("BLOCKLIST", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
        ("SPII", "content_filter"),
        ("IMAGE_SAFETY", "content_filter"),
        ("LANGUAGE", "stop"),
        ("OTHER", "stop"),
        ("FINISH_REASON_UNSPECIFIED", "stop"),
    ],
)
def test_finish_reasons_map_to_openais_enum_and_keep_geminis_word(native: str, reason: str) -> None:
    [finish] = parse_all(event(candidate(finish=native)))
    assert finish == Finish(reason, native=native)
    assert finish.native == native  # type: ignore[union-attr]


@pytest.mark.parametrize("native", ["MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL", "TOO_MANY_TOOL_CALLS"])
def test_a_failed_function_call_is_an_error_not_an_empty_stop(native: str) -> None:
    parser = StreamParser("gem")
    failed = candidate(finish=native)
    failed["finishMessage"] = "Malformed function call: print(default_api.f(x=))"
    with pytest.raises(UpstreamError, match=native):
        parser.parse(event(failed))


def test_a_finish_reason_is_sent_once_per_candidate() -> None:
    events = parse_all(event(candidate({"text": "a"}, finish="STOP")), event(candidate(finish="STOP")))
    assert [e for e in events if isinstance(e, Finish)] == [Finish("stop", native="STOP")]


def test_a_stream_that_ends_without_a_finish_reason_was_cut_off() -> None:
    parser = StreamParser("gem")
    parser.parse(event(candidate({"text": "half"})))
    with pytest.raises(UpstreamError, match="before it finished"):
        parser.close()
    with pytest.raises(UpstreamError, match="before it finished"):
        StreamParser("gem").close()


# several candidates ----------------------------------------------------------------------------


def test_candidates_become_choices_by_their_index() -> None:
    events = parse_all(
        event(candidate({"text": "A"}, index=0), candidate({"text": "B"}, index=1)),
        event(
            candidate({"text": "a"}, index=1, finish="STOP"),
            candidate({"functionCall": {"name": "f"}}, index=0),
        ),
        event(candidate(finish="STOP", index=0)),
    )
    completion = fold_events(events)
    first, second = completion.choices
    assert (first.index, first.content, first.finish_reason) == (0, "A", "tool_calls")
    assert [c.name for c in first.tool_calls] == ["f"]
    assert (second.index, second.content, second.finish_reason) == (1, "Ba", "stop")


def test_a_candidate_without_index_is_numbered_by_position() -> None:
    events = parse_all(event(candidate({"text": "x"}, index=None, finish="STOP")))
    assert events[0] == TextDelta("x", 0)


# usage ----------------------------------------------------------------------------------------


def test_usage_counts_thoughts_as_completion_and_cached_tokens_as_prompt() -> None:
    usage = parse_usage(
        {
            "promptTokenCount": 120,
            "cachedContentTokenCount": 100,
            "candidatesTokenCount": 20,
            "thoughtsTokenCount": 30,
            "toolUsePromptTokenCount": 5,
            "totalTokenCount": 175,
        }
    )
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (125, 50, 175)
    assert usage.to_dict() == {
        "prompt_tokens": 125,
        "completion_tokens": 50,
        "total_tokens": 175,
        "prompt_tokens_details": {"cached_tokens": 100},
        "completion_tokens_details": {"reasoning_tokens": 30},
    }


def test_usage_without_counts_is_ignored_and_the_last_counts_win() -> None:
    events = parse_all(
        event(candidate({"text": "a"}), usageMetadata={"trafficType": "ON_DEMAND"}),
        event(
            candidate({"text": "b"}),
            usageMetadata={"promptTokenCount": 3, "candidatesTokenCount": 1, "totalTokenCount": 4},
        ),
        event(
            candidate(finish="STOP"),
            usageMetadata={"promptTokenCount": 3, "candidatesTokenCount": 2, "totalTokenCount": 5},
        ),
    )
    assert [e for e in events if isinstance(e, Usage)] == [Usage(3, 2)]
    assert isinstance(events[-1], Usage)
    assert parse_usage({"trafficType": "ON_DEMAND"}) is None


def test_a_total_that_counts_more_than_prompt_and_completion_is_passed_on() -> None:
    usage = parse_usage({"promptTokenCount": 3, "candidatesTokenCount": 2, "totalTokenCount": 9})
    assert usage is not None and usage.total_tokens == 9


# logprobs -----------------------------------------------------------------------------------------


def test_logprobs_result_becomes_openai_logprobs_on_the_text() -> None:
    with_logprobs = candidate({"text": "Hi!"}, finish="STOP")
    with_logprobs["logprobsResult"] = {
        "chosenCandidates": [
            {"token": "Hi", "logProbability": -0.25},
            {"token": "!", "logProbability": -1.5},
        ],
        "topCandidates": [
            {
                "candidates": [
                    {"token": "Hi", "logProbability": -0.25},
                    {"token": "Hello", "logProbability": -2.0},
                ]
            },
            {"candidates": [{"token": "!", "logProbability": -1.5}]},
        ],
    }
    [text, _] = parse_all(event(with_logprobs))
    assert isinstance(text, TextDelta) and text.text == "Hi!"
    assert text.logprobs == [
        {
            "token": "Hi",
            "logprob": -0.25,
            "bytes": [72, 105],
            "top_logprobs": [
                {"token": "Hi", "logprob": -0.25, "bytes": [72, 105]},
                {"token": "Hello", "logprob": -2.0, "bytes": list(b"Hello")},
            ],
        },
        {
            "token": "!",
            "logprob": -1.5,
            "bytes": [33],
            "top_logprobs": [{"token": "!", "logprob": -1.5, "bytes": [33]}],
        },
    ]


# blocked prompts and errors ---------------------------------------------------------------------


def test_a_blocked_prompt_is_a_400_not_an_empty_answer() -> None:
    blocked = {
        "promptFeedback": {"blockReason": "PROHIBITED_CONTENT", "blockReasonMessage": "not allowed"},
        "usageMetadata": {"promptTokenCount": 8, "totalTokenCount": 8},
    }
    with pytest.raises(InvalidRequestError) as info:
        StreamParser("gem").parse(blocked)
    assert info.value.http_status == 400 and info.value.code == "content_filter"
    assert "PROHIBITED_CONTENT" in info.value.message and "not allowed" in info.value.message


def test_an_event_without_candidates_or_block_says_nothing() -> None:
    parser = StreamParser("gem")
    assert parser.parse({"promptFeedback": {"safetyRatings": []}}) == []


def test_an_error_event_mid_stream_maps_like_an_http_error() -> None:
    error = {"error": {"code": 429, "message": "Resource has been exhausted", "status": "RESOURCE_EXHAUSTED"}}
    with pytest.raises(RateLimitError) as info:
        StreamParser("gem").parse(error)
    assert info.value.http_status == 429


@pytest.mark.parametrize("raw", [[], "text", 3, None])
def test_an_event_that_is_not_an_object_is_the_upstreams_fault(raw: Any) -> None:
    with pytest.raises(UpstreamError):
        StreamParser("gem").parse(raw)


# bytes cut anywhere --------------------------------------------------------------------------------


def run_bytes(reads: list[bytes]) -> list[Event]:
    """What a client would get: the SSE decoder and the parser fed read by read."""
    decoder, parser = SSEDecoder(), StreamParser("gem")
    out: list[Event] = []
    for data in reads:
        for sse in decoder.feed(data):
            out += parser.parse(orjson.loads(sse.data))
    for sse in decoder.flush():
        out += parser.parse(orjson.loads(sse.data))
    return out + parser.close()


def comparable(events: list[Event]) -> list[Any]:
    """Events with the generated call ids blanked (they differ per run)."""
    return [replace(e, id="x") if isinstance(e, ToolCallDelta) else e for e in events]


def multibyte_stream(newline: bytes) -> bytes:
    events = [
        event(candidate({"text": "Grüße, ", "thought": True})),
        event(candidate({"text": "日本語 ✓ "}, {"text": "🙂"})),
        event(candidate({"functionCall": {"name": "f", "args": {"q": "naïve ☃"}}}), responseId="r"),
        event(
            candidate({"text": ""}, finish="STOP"),
            usageMetadata={"promptTokenCount": 2, "candidatesTokenCount": 3},
        ),
    ]
    return b"".join(frame(e, newline) for e in events)


@pytest.mark.parametrize("newline", [b"\r\n", b"\n"], ids=["crlf", "lf"])
def test_multibyte_text_cut_at_every_byte_gives_the_same_events(newline: bytes) -> None:
    data = multibyte_stream(newline)
    whole = comparable(run_bytes([data]))
    assert any(isinstance(e, TextDelta) and "🙂" in e.text for e in whole)
    for cut in range(1, len(data)):
        assert comparable(run_bytes([data[:cut], data[cut:]])) == whole, cut
    assert comparable(run_bytes([data[i : i + 1] for i in range(len(data))])) == whole


def google_recordings() -> list[str]:
    from tests.conftest import SHARED_FIXTURES

    folder = SHARED_FIXTURES / "vercel-ai"
    return sorted(p.name for p in folder.glob("google-*.chunks.txt")) if folder.is_dir() else ["(none)"]


@pytest.mark.parametrize("newline", [b"\r\n", b"\n"], ids=["crlf", "lf"])
@pytest.mark.parametrize("name", google_recordings())
def test_recorded_streams_cut_at_every_byte_give_the_same_events(
    name: str, newline: bytes, shared_fixtures: Path
) -> None:
    data = b"".join(frame(line, newline) for line in recording_lines(shared_fixtures / "vercel-ai" / name))
    whole = comparable(run_bytes([data]))
    # every byte boundary at once: one read per byte
    assert comparable(run_bytes([data[i : i + 1] for i in range(len(data))])) == whole
    # and each boundary alone, two reads cut there (every byte of the short recordings, every
    # few bytes of the 32 kB one)
    step = max(1, len(data) // 3000)
    for cut in range(1, len(data), step):
        assert comparable(run_bytes([data[:cut], data[cut:]])) == whole, cut
    thirds = [data[: len(data) // 3], data[len(data) // 3 : 2 * len(data) // 3], data[2 * len(data) // 3 :]]
    assert comparable(run_bytes(thirds)) == whole
