"""The Responses stream encoder on its own: canonical events in, OpenAI's event sequence out.

Each sequence is checked event by event against the order OpenAI documents (and its own
streams show), field by field, and every event against the `ResponseStreamEvent` schema of
OpenAI's OpenAPI spec when the shared fixtures are present.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from sluicegate.api.responses.encoder import ResponseEncoder
from sluicegate.api.responses.request import parse_responses_request
from sluicegate.api.responses.resource import response_object
from sluicegate.core.completion import completion_events, fold_events
from sluicegate.core.events import (
    Batch,
    BlockEnd,
    Finish,
    ReasoningDelta,
    RefusalDelta,
    Started,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from sluicegate.errors import GatewayError, RateLimitError, UpstreamError
from tests.conftest import SHARED_FIXTURES
from tests.support.openai_spec import spec_validator

TOOLS = [{"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {}}}]


def encoder(**body: Any) -> ResponseEncoder:
    request = parse_responses_request({"model": "m", "input": "hi", **body})
    return ResponseEncoder(response_object(request, "resp_test", 1700000000, "m"))


def frames(raw: bytes) -> list[dict[str, Any]]:
    """Each `event: <type>` + `data: {...}` block, checking the framing exactly."""
    assert raw.endswith(b"\n\n") and b"\r" not in raw
    events = []
    for block in raw[:-2].split(b"\n\n"):
        name_line, data_line = block.split(b"\n")
        assert name_line.startswith(b"event: ") and data_line.startswith(b"data: "), block
        data = orjson.loads(data_line[len(b"data: ") :])
        assert data["type"] == name_line[len(b"event: ") :].decode()
        events.append(data)
    assert [event["sequence_number"] for event in events] == list(range(len(events)))
    return events


def run(batches: list[Batch], error: GatewayError | None = None, **body: Any) -> list[dict[str, Any]]:
    enc = encoder(**body)
    raw = enc.open(Started())
    for batch in batches:
        raw += enc.encode_batch(batch)
    raw += enc.fail(error) if error is not None else enc.close()
    events = frames(raw)
    if SHARED_FIXTURES.is_dir():
        validator = spec_validator(SHARED_FIXTURES, "ResponseStreamEvent")
        for event in events:
            errors = [e.message for e in validator.iter_errors(event)]
            assert not errors, (event["type"], errors)
    return events


def types(events: list[dict[str, Any]]) -> list[str]:
    return [event["type"].removeprefix("response.") for event in events]


def test_text_follows_openais_sequence_field_by_field() -> None:
    events = run([[TextDelta("Hel"), TextDelta("lo")], [Finish("stop"), Usage(11, 2)]])
    assert types(events) == [
        "created",
        "in_progress",
        "output_item.added",
        "content_part.added",
        "output_text.delta",
        "output_text.delta",
        "output_text.done",
        "content_part.done",
        "output_item.done",
        "completed",
    ]
    created, in_progress = events[0]["response"], events[1]["response"]
    assert created == in_progress
    assert created["id"] == "resp_test" and created["object"] == "response" and created["model"] == "m"
    assert created["status"] == "in_progress" and created["output"] == [] and "usage" not in created
    added = events[2]
    assert added["output_index"] == 0
    item_id = added["item"]["id"]
    assert item_id.startswith("msg_")
    assert added["item"] == {
        "id": item_id,
        "type": "message",
        "status": "in_progress",
        "content": [],
        "role": "assistant",
    }
    where = {"item_id": item_id, "output_index": 0, "content_index": 0}
    empty = {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
    assert events[3] == {"type": "response.content_part.added", "sequence_number": 3, **where, "part": empty}
    assert events[4] == {
        "type": "response.output_text.delta",
        "sequence_number": 4,
        **where,
        "delta": "Hel",
        "logprobs": [],
    }
    assert events[5]["delta"] == "lo"
    assert events[6] == {
        "type": "response.output_text.done",
        "sequence_number": 6,
        **where,
        "text": "Hello",
        "logprobs": [],
    }
    part = {**empty, "text": "Hello"}
    assert events[7] == {"type": "response.content_part.done", "sequence_number": 7, **where, "part": part}
    item = {"id": item_id, "type": "message", "status": "completed", "content": [part], "role": "assistant"}
    assert events[8] == {
        "type": "response.output_item.done",
        "sequence_number": 8,
        "output_index": 0,
        "item": item,
    }
    final = events[9]["response"]
    assert final["status"] == "completed" and isinstance(final["completed_at"], int)
    assert final["output"] == [item]
    assert final["usage"] == {
        "input_tokens": 11,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": 2,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 13,
    }
    assert {k: v for k, v in final.items() if k not in ("status", "completed_at", "output", "usage")} == {
        k: v for k, v in created.items() if k not in ("status", "completed_at", "output")
    }


def test_the_token_limit_ends_with_response_incomplete() -> None:
    events = run([[TextDelta("Once upon")], [Finish("length"), Usage(5, 3)]], max_output_tokens=3)
    assert types(events)[-3:] == ["content_part.done", "output_item.done", "incomplete"]
    assert events[-2]["item"]["status"] == "incomplete"
    final = events[-1]["response"]
    assert final["status"] == "incomplete"
    assert final["incomplete_details"] == {"reason": "max_output_tokens"}
    assert final["completed_at"] is None and final["max_output_tokens"] == 3
    assert final["output"][0]["content"][0]["text"] == "Once upon"


def test_a_refusal_is_its_own_content_part_of_the_message() -> None:
    events = run([[TextDelta("I"), RefusalDelta("I can't"), RefusalDelta(" help.")], [Finish("stop")]])
    assert types(events)[2:] == [
        "output_item.added",
        "content_part.added",
        "output_text.delta",
        "output_text.done",
        "content_part.done",
        "content_part.added",
        "refusal.delta",
        "refusal.delta",
        "refusal.done",
        "content_part.done",
        "output_item.done",
        "completed",
    ]
    assert events[7]["content_index"] == 1 and events[7]["part"] == {"type": "refusal", "refusal": ""}
    assert events[8]["delta"] == "I can't" and events[8]["content_index"] == 1
    assert "logprobs" not in events[8]
    assert events[10]["refusal"] == "I can't help."
    content = events[-1]["response"]["output"][0]["content"]
    assert content == [
        {"type": "output_text", "annotations": [], "logprobs": [], "text": "I"},
        {"type": "refusal", "refusal": "I can't help."},
    ]


def test_reasoning_is_an_item_with_a_summary_before_the_message() -> None:
    batches: list[Batch] = [
        [ReasoningDelta("Think"), ReasoningDelta("ing."), ReasoningDelta("", signature="sig-1")],
        [TextDelta("Answer")],
        [Finish("stop"), Usage(3, 9, reasoning_tokens=4)],
    ]
    events = run(batches)
    assert types(events)[2:10] == [
        "output_item.added",
        "reasoning_summary_part.added",
        "reasoning_summary_text.delta",
        "reasoning_summary_text.delta",
        "reasoning_summary_text.done",
        "reasoning_summary_part.done",
        "output_item.done",
        "output_item.added",
    ]
    reasoning_id = events[2]["item"]["id"]
    assert reasoning_id.startswith("rs_")
    assert events[2]["item"] == {"id": reasoning_id, "type": "reasoning", "summary": []}
    where = {"item_id": reasoning_id, "output_index": 0, "summary_index": 0}
    assert events[3] == {
        "type": "response.reasoning_summary_part.added",
        "sequence_number": 3,
        **where,
        "part": {"type": "summary_text", "text": ""},
    }
    assert events[4] == {
        "type": "response.reasoning_summary_text.delta",
        "sequence_number": 4,
        **where,
        "delta": "Think",
    }
    assert events[6] == {
        "type": "response.reasoning_summary_text.done",
        "sequence_number": 6,
        **where,
        "text": "Thinking.",
    }
    assert events[7]["part"] == {"type": "summary_text", "text": "Thinking."}
    reasoning = {
        "id": reasoning_id,
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": "Thinking."}],
        "encrypted_content": "sig-1",
    }
    assert events[8]["item"] == reasoning
    assert events[9]["output_index"] == 1 and events[9]["item"]["type"] == "message"
    final = events[-1]["response"]
    assert final["output"][0] == reasoning
    assert final["usage"]["output_tokens_details"] == {"reasoning_tokens": 4}


def test_each_tool_call_is_a_function_call_item() -> None:
    batches: list[Batch] = [
        [ToolCallDelta(0, "", "call_a", "get_weather"), ToolCallDelta(0, '{"city":')],
        [ToolCallDelta(0, '"Paris"}'), ToolCallDelta(1, '{"city":"Rome"}', "call_b", "get_weather")],
        [Finish("tool_calls"), Usage(20, 12)],
    ]
    events = run(batches, tools=TOOLS)
    assert types(events)[2:] == [
        "output_item.added",
        "function_call_arguments.delta",
        "function_call_arguments.delta",
        "function_call_arguments.done",
        "output_item.done",
        "output_item.added",
        "function_call_arguments.delta",
        "function_call_arguments.done",
        "output_item.done",
        "completed",
    ]
    first_id = events[2]["item"]["id"]
    assert first_id.startswith("fc_")
    assert events[2]["item"] == {
        "id": first_id,
        "type": "function_call",
        "status": "in_progress",
        "arguments": "",
        "call_id": "call_a",
        "name": "get_weather",
    }
    assert events[3] == {
        "type": "response.function_call_arguments.delta",
        "sequence_number": 3,
        "item_id": first_id,
        "output_index": 0,
        "delta": '{"city":',
    }
    assert events[5] == {
        "type": "response.function_call_arguments.done",
        "sequence_number": 5,
        "item_id": first_id,
        "output_index": 0,
        "name": "get_weather",
        "arguments": '{"city":"Paris"}',
    }
    assert events[6]["item"] == {**events[2]["item"], "status": "completed", "arguments": '{"city":"Paris"}'}
    assert events[7]["output_index"] == 1 and events[7]["item"]["call_id"] == "call_b"
    final = events[-1]["response"]
    assert final["status"] == "completed"
    assert [(item["call_id"], item["arguments"]) for item in final["output"]] == [
        ("call_a", '{"city":"Paris"}'),
        ("call_b", '{"city":"Rome"}'),
    ]
    assert final["tools"] == [
        {
            "type": "function",
            "name": "get_weather",
            "description": None,
            "parameters": TOOLS[0]["parameters"],
            "strict": None,
        }
    ]


def test_text_then_a_tool_call_closes_the_message_first() -> None:
    events = run(
        [
            [TextDelta("Let me check."), ToolCallDelta(0, "{}", "call_1", "get_weather")],
            [Finish("tool_calls")],
        ]
    )
    kinds = [(e["type"], e.get("output_index")) for e in events if "output_item" in e["type"]]
    assert kinds == [
        ("response.output_item.added", 0),
        ("response.output_item.done", 0),
        ("response.output_item.added", 1),
        ("response.output_item.done", 1),
    ]
    assert [item["type"] for item in events[-1]["response"]["output"]] == ["message", "function_call"]


def test_a_block_end_closes_the_item_and_later_text_opens_another() -> None:
    events = run([[TextDelta("one"), BlockEnd(), TextDelta("two")], [Finish("stop")]])
    output = events[-1]["response"]["output"]
    assert [item["content"][0]["text"] for item in output] == ["one", "two"]
    assert len({item["id"] for item in output}) == 2


def test_a_late_fragment_of_a_closed_call_still_reaches_the_final_arguments() -> None:
    batches: list[Batch] = [
        [ToolCallDelta(0, '{"a":', "call_a", "f"), ToolCallDelta(1, "{}", "call_b", "g")],
        [ToolCallDelta(0, "1}"), Finish("tool_calls")],
    ]
    final = run(batches)[-1]["response"]
    assert [item["arguments"] for item in final["output"]] == ['{"a":1}', "{}"]


def test_other_choices_and_empty_text_make_no_events() -> None:
    events = run(
        [[TextDelta("", 0), TextDelta("other", 1), Finish("stop", 1)], [TextDelta("mine"), Finish("stop")]]
    )
    deltas = [e["delta"] for e in events if e["type"] == "response.output_text.delta"]
    assert deltas == ["mine"]


def test_logprobs_ride_on_the_deltas_and_the_part() -> None:
    entry = {"token": "Hi", "logprob": -0.1, "bytes": [72, 105], "top_logprobs": []}
    events = run(
        [[TextDelta("Hi", logprobs=[entry])], [Finish("stop")]], include=["message.output_text.logprobs"]
    )
    delta = next(e for e in events if e["type"] == "response.output_text.delta")
    assert delta["logprobs"] == [entry]
    assert events[-1]["response"]["output"][0]["content"][0]["logprobs"] == [entry]


@pytest.mark.parametrize(
    ("error", "code"),
    [(UpstreamError("upstream broke"), "server_error"), (RateLimitError("slow down"), "rate_limit_exceeded")],
)
def test_a_failure_after_the_first_byte_is_response_failed_and_the_end(
    error: GatewayError, code: str
) -> None:
    events = run([[TextDelta("Half an ans")]], error=error)
    assert types(events) == [
        "created",
        "in_progress",
        "output_item.added",
        "content_part.added",
        "output_text.delta",
        "failed",
    ]
    final = events[-1]["response"]
    assert final["status"] == "failed"
    assert final["error"] == {"code": code, "message": error.message}
    assert final["output"][0]["status"] == "incomplete"
    assert final["output"][0]["content"][0]["text"] == "Half an ans"


def test_a_whole_answer_folds_to_the_same_response_as_its_stream() -> None:
    events: Batch = [
        ReasoningDelta("Hmm."),
        TextDelta("Sure: "),
        TextDelta("done."),
        ToolCallDelta(0, '{"x":1}', "call_1", "f"),
        Finish("tool_calls"),
        Usage(4, 6),
    ]
    streamed = run([events])[-1]["response"]
    quiet = ResponseEncoder(
        streamed | {"status": "in_progress", "output": [], "completed_at": None}, quiet=True
    )
    assert quiet.encode_batch(completion_events(fold_events(events))) == b""
    assert quiet.close() == b""
    whole = quiet.resource

    def without_ids(response: dict[str, Any]) -> Any:
        return [{k: v for k, v in item.items() if k != "id"} for item in response["output"]]

    assert without_ids(whole) == without_ids(streamed)
    assert whole["usage"] == streamed["usage"] and whole["status"] == "completed"


def test_the_schema_check_catches_a_broken_event() -> None:
    if not SHARED_FIXTURES.is_dir():
        pytest.skip("../shared/fixtures is not present")
    validator = spec_validator(Path(SHARED_FIXTURES), "ResponseStreamEvent")
    good = {
        "type": "response.output_text.delta",
        "sequence_number": 4,
        "item_id": "msg_1",
        "output_index": 0,
        "content_index": 0,
        "delta": "x",
        "logprobs": [],
    }
    assert validator.is_valid(good)
    for broken in (
        {k: v for k, v in good.items() if k != "sequence_number"},
        {**good, "delta": None},
        {k: v for k, v in good.items() if k != "logprobs"},
    ):
        assert not validator.is_valid(broken), broken
