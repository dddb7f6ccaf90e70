"""ChunkParser and upstream_error: pure functions over OpenAI-compatible payloads."""

from __future__ import annotations

import email.utils
import time
from typing import Any

import orjson
import pytest

from sluicegate.core.events import Finish, ReasoningDelta, TextDelta, ToolCallDelta, Usage
from sluicegate.errors import (
    InvalidRequestError,
    RateLimitError,
    ServiceUnavailableError,
    UpstreamConfigError,
    UpstreamError,
)
from sluicegate.providers.openai.chunks import ChunkParser, finish_reason, parse_usage
from sluicegate.providers.openai.errors import upstream_error


def payload(*choices: dict[str, Any], usage: Any = None, **extra: Any) -> dict[str, Any]:
    return {"id": "c", "object": "chat.completion.chunk", "choices": list(choices), "usage": usage, **extra}


def choice(index: int = 0, finish: str | None = None, **delta: Any) -> dict[str, Any]:
    return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}


def test_role_chunk_with_empty_content_yields_nothing() -> None:
    parser = ChunkParser()
    assert parser.parse(payload(choice(role="assistant", content=""))) == []
    assert parser.seen == {0}


def test_text_and_finish() -> None:
    parser = ChunkParser()
    assert parser.parse(payload(choice(content="Hi"))) == [TextDelta("Hi", 0)]
    assert parser.parse(payload(choice(finish="length"))) == [Finish("length", 0)]
    assert parser.close(saw_done=True) == []


def test_content_and_finish_in_one_chunk_give_two_events_in_order() -> None:
    events = ChunkParser().parse(payload(choice(content="end.", finish="stop")))
    assert events == [TextDelta("end.", 0), Finish("stop", 0)]


def test_a_second_finish_for_the_same_choice_is_ignored() -> None:
    parser = ChunkParser()
    parser.parse(payload(choice(finish="stop")))
    assert parser.parse(payload(choice(finish="stop"))) == []


def test_missing_finish_reason_key_is_finished_as_stop_after_done() -> None:
    parser = ChunkParser()
    events = parser.parse({"choices": [{"index": 0, "delta": {"content": "a"}}]})
    assert events == [TextDelta("a", 0)]
    assert parser.close(saw_done=True) == [Finish("stop", 0)]


def test_missing_finish_after_tool_calls_is_tool_calls() -> None:
    parser = ChunkParser()
    parser.parse(
        {
            "choices": [
                {"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "c1", "function": {"name": "f"}}]}}
            ]
        }
    )
    assert parser.close(saw_done=True) == [Finish("tool_calls", 0)]


def test_usage_on_every_chunk_only_the_last_counts() -> None:
    parser = ChunkParser()
    parser.parse(payload(choice(content="a"), usage={"prompt_tokens": 3, "completion_tokens": 1}))
    parser.parse(payload(choice(content="b"), usage={"prompt_tokens": 3, "completion_tokens": 2}))
    parser.parse(payload(choice(finish="stop"), usage=None))
    parser.parse(payload(usage={"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}))
    assert parser.close(saw_done=True) == [Usage(3, 5)]


def test_usage_details_are_kept_and_other_keys_dropped() -> None:
    usage = parse_usage(
        {
            "prompt_tokens": 16,
            "completion_tokens": 300,
            "total_tokens": 316,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 7},
            "queue_time": 0.1,
        }
    )
    assert usage is not None
    assert usage.to_dict() == {
        "prompt_tokens": 16,
        "completion_tokens": 300,
        "total_tokens": 316,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 7},
    }


def test_upstream_total_tokens_that_counts_reasoning_is_kept() -> None:
    usage = parse_usage({"prompt_tokens": 12, "completion_tokens": 2, "total_tokens": 354})
    assert usage is not None and usage.to_dict()["total_tokens"] == 354


@pytest.mark.parametrize("raw", [None, "n/a", [], 5])
def test_usage_that_is_not_an_object_is_none(raw: Any) -> None:
    assert parse_usage(raw) is None


def test_empty_choices_chunk_yields_nothing() -> None:
    parser = ChunkParser()
    assert parser.parse(payload()) == []
    assert parser.parse({"choices": None, "usage": None}) == []


def test_reasoning_content_and_reasoning() -> None:
    parser = ChunkParser()
    assert parser.parse(payload(choice(reasoning_content="think", content=None))) == [
        ReasoningDelta("think", 0)
    ]
    assert parser.parse(payload(choice(reasoning="more"))) == [ReasoningDelta("more", 0)]
    assert parser.parse(payload(choice(content="", reasoning_content=""))) == []


def test_mistral_content_parts_split_into_reasoning_and_text() -> None:
    parser = ChunkParser()
    thinking = [{"type": "thinking", "thinking": [{"type": "text", "text": "The user"}]}]
    assert parser.parse(payload(choice(role="assistant", content=thinking))) == [
        ReasoningDelta("The user", 0)
    ]
    assert parser.parse(payload(choice(content=[{"type": "text", "text": "4"}]))) == [TextDelta("4", 0)]


def test_tool_call_fragments() -> None:
    parser = ChunkParser()
    first = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "get", "arguments": ""}}
    assert parser.parse(payload(choice(tool_calls=[first]))) == [ToolCallDelta(0, "", "call_1", "get", 0)]
    piece = {"index": 0, "function": {"arguments": '{"a":'}}
    assert parser.parse(payload(choice(tool_calls=[piece]))) == [ToolCallDelta(0, '{"a":')]
    assert parser.parse(payload(choice(finish="tool_calls"))) == [Finish("tool_calls", 0)]


def test_parallel_tool_calls_keep_their_index() -> None:
    parser = ChunkParser()
    calls = [
        {"index": 0, "id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}},
        {"index": 1, "id": "b", "type": "function", "function": {"name": "g", "arguments": "{}"}},
    ]
    assert parser.parse(payload(choice(tool_calls=calls))) == [
        ToolCallDelta(0, "{}", "a", "f"),
        ToolCallDelta(1, "{}", "b", "g"),
    ]


def test_tool_calls_without_index_are_numbered_by_id() -> None:
    parser = ChunkParser()
    events = parser.parse(
        payload(
            choice(
                tool_calls=[
                    {"id": "x", "function": {"name": "f", "arguments": "{"}},
                    {"function": {"arguments": "}"}},
                    {"id": "y", "function": {"name": "g", "arguments": "{}"}},
                ]
            )
        )
    )
    assert events == [
        ToolCallDelta(0, "{", "x", "f"),
        ToolCallDelta(0, "}"),
        ToolCallDelta(1, "{}", "y", "g"),
    ]


def test_tool_call_index_null_does_not_crash() -> None:
    events = ChunkParser().parse(
        payload(choice(tool_calls=[{"index": None, "id": "x", "function": {"name": "f"}}]))
    )
    assert events == [ToolCallDelta(0, "", "x", "f")]


def test_id_and_name_repeated_on_every_fragment_are_sent_once() -> None:
    parser = ChunkParser()
    fragment = {"index": 0, "id": "x", "type": "function", "function": {"name": "f", "arguments": "{"}}
    again = {"index": 0, "id": "x", "type": "function", "function": {"name": "f", "arguments": "}"}}
    empty_name = {"index": 0, "type": "function", "function": {"name": "", "arguments": ""}}
    assert parser.parse(payload(choice(tool_calls=[fragment]))) == [ToolCallDelta(0, "{", "x", "f")]
    assert parser.parse(payload(choice(tool_calls=[again]))) == [ToolCallDelta(0, "}")]
    assert parser.parse(payload(choice(tool_calls=[empty_name]))) == []


def test_n_choices_interleave_and_each_finishes() -> None:
    parser = ChunkParser()
    events = parser.parse(payload(choice(0, content="a"), choice(1, content="b")))
    events += parser.parse(payload(choice(1, finish="length")))
    events += parser.parse(payload(choice(0, finish="stop")))
    assert events == [TextDelta("a", 0), TextDelta("b", 1), Finish("length", 1), Finish("stop", 0)]
    assert parser.close(saw_done=False) == []


def test_closing_without_done_before_every_choice_finished_is_an_error() -> None:
    parser = ChunkParser()
    parser.parse(payload(choice(0, content="a"), choice(1, content="b")))
    parser.parse(payload(choice(0, finish="stop")))
    with pytest.raises(UpstreamError, match="closed the stream"):
        parser.close(saw_done=False)


def test_closing_an_empty_stream_without_done_is_an_error() -> None:
    with pytest.raises(UpstreamError):
        ChunkParser().close(saw_done=False)


def test_error_object_mid_stream_raises() -> None:
    """In the gateway's words: the upstream's text goes to the log, unless it is a 4xx about
    the client's request (then redacted)."""
    parser = ChunkParser()
    with pytest.raises(UpstreamError, match="reported an error mid-stream") as info:
        parser.parse({"error": {"message": "Overloaded", "type": "server_error"}})
    assert info.value.http_status == 502 and "Overloaded" not in info.value.message
    with pytest.raises(UpstreamError, match="reported an error mid-stream"):
        parser.parse({"error": "boom"})
    with pytest.raises(InvalidRequestError, match="context length exceeded") as refused:
        parser.parse({"error": {"message": "context length exceeded, key=abc123", "code": 400}})
    assert refused.value.http_status == 400 and "abc123" not in refused.value.message


@pytest.mark.parametrize("raw", [[1, 2], "text", 3, None])
def test_non_object_chunk_raises(raw: Any) -> None:
    with pytest.raises(UpstreamError):
        ChunkParser().parse(raw)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("stop", "stop"),
        ("length", "length"),
        ("tool_calls", "tool_calls"),
        ("content_filter", "content_filter"),
        ("function_call", "function_call"),
        ("eos", "stop"),
        ("end_turn", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("something_new", "stop"),
    ],
)
def test_finish_reasons_stay_within_openai_enum(raw: str, expected: str) -> None:
    assert finish_reason(raw) == expected
    assert ChunkParser().parse(payload(choice(finish=raw))) == [Finish(expected, 0)]


# upstream_error ---------------------------------------------------------------------------------


def err(message: str, param: str | None = None, code: str | None = None) -> bytes:
    return orjson.dumps(
        {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}}
    )


def test_400_keeps_status_message_param_and_code() -> None:
    error = upstream_error(400, err("Invalid 'temperature'", "temperature", "invalid_value"), {}, "m")
    assert isinstance(error, InvalidRequestError)
    assert error.http_status == 400
    assert (error.message, error.param, error.code) == (
        "Invalid 'temperature'",
        "temperature",
        "invalid_value",
    )


def test_422_is_a_400() -> None:
    error = upstream_error(422, err("bad"), {}, "m")
    assert isinstance(error, InvalidRequestError) and error.http_status == 400 and error.message == "bad"


def test_upstream_404_is_the_operators_mistake_not_the_clients() -> None:
    # a wrong upstream_model or base_url in the config: 502 naming what to check, not a 404 blaming the client
    error = upstream_error(404, err("The model `gpt-4o-typo` does not exist"), {}, "m")
    assert isinstance(error, UpstreamError) and error.http_status == 502
    assert "upstream_model" in error.message and "gpt-4o-typo" in error.message
    assert upstream_error(404, b"", {}, "m").http_status == 502


def test_an_unknown_model_answered_with_400_is_the_operators_mistake_too() -> None:
    body = orjson.dumps({"error": {"message": "gpt-4o-typo is not a valid model", "code": "model_not_found"}})
    error = upstream_error(400, body, {}, "m")
    assert isinstance(error, UpstreamConfigError) and error.http_status == 502
    assert error.error_type == "upstream_error" and "upstream_model" in error.message


def test_an_html_error_page_stays_in_the_log() -> None:
    page = b"<html><head><title>502 Bad Gateway</title></head><body>nginx/1.25.3</body></html>"
    error = upstream_error(502, page, {}, "m")
    assert "nginx" not in error.message and "<" not in error.message
    assert "502" in error.message
    assert "Service restarting" not in upstream_error(500, b"Service restarting", {}, "m").message  # a 5xx: the log
    assert "Service restarting" in upstream_error(409, b"Service restarting", {}, "m").message


def test_413_keeps_its_status() -> None:
    too_big = upstream_error(413, b"", {}, "m")
    assert too_big.http_status == 413 and "too large" in too_big.message


@pytest.mark.parametrize("status", [401, 403])
def test_refused_credentials_are_the_gateways_problem(status: int) -> None:
    error = upstream_error(status, err("Incorrect API key provided: sk-upstr****"), {}, "up")
    assert isinstance(error, UpstreamError)
    assert error.http_status == 502
    assert "sk-" not in error.message  # the upstream's words about its key are not passed on
    assert str(status) in error.message


def test_429_carries_retry_after() -> None:
    error = upstream_error(429, err("Slow down"), {"retry-after": "7"}, "m")
    assert isinstance(error, RateLimitError)
    assert error.http_status == 429 and error.message == "Slow down"
    assert error.headers() == {"retry-after": "7"}


@pytest.mark.parametrize("header", [None, "", "Wed, 21 Oct 2015 07:28:00 GMT", "-3", "soon"])
def test_429_without_a_usable_retry_after_promises_no_wait(header: str | None) -> None:
    # an invented Retry-After would be a guess presented as the upstream's word
    error = upstream_error(429, b"", {"retry-after": header} if header is not None else {}, "m")
    assert isinstance(error, RateLimitError)
    assert error.retry_after is None and error.headers() == {}


def test_retry_after_as_a_future_http_date_or_in_milliseconds() -> None:
    future = email.utils.formatdate(time.time() + 30, usegmt=True)
    error = upstream_error(429, b"", {"retry-after": future}, "m")
    assert error.retry_after is not None and 28 <= error.retry_after <= 30
    error = upstream_error(429, b"", {"retry-after-ms": "1500", "retry-after": "9"}, "m")
    assert error.retry_after == 1.5 and error.headers() == {"retry-after": "2"}


def test_503_is_service_unavailable_with_retry_after() -> None:
    error = upstream_error(503, b"", {"retry-after": "2.4"}, "m")
    assert isinstance(error, ServiceUnavailableError)
    # rounded up: a client that waits 2 s when asked for 2.4 s comes back too early
    assert error.http_status == 503 and error.headers() == {"retry-after": "3"}


@pytest.mark.parametrize("status", [500, 502, 504, 418])
def test_other_failures_are_502_naming_status_and_message(status: int) -> None:
    error = upstream_error(status, err("kaboom"), {}, "up")
    assert type(error) is UpstreamError
    assert error.http_status == 502
    assert str(status) in error.message and "`up`" in error.message
    # a 5xx's text goes to the log; another 4xx's message is passed on (redacted)
    assert ("kaboom" in error.message) is (status < 500)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<html>Bad Gateway</html>", "The upstream rejected the request."),  # markup stays in the log
        (b"Bad request: missing messages", "Bad request: missing messages"),
        (b'{"error": "plain string"}', "plain string"),
        (b'{"message": "top level"}', "top level"),
        (b'{"detail": "unknown shape"}', "The upstream rejected the request."),
        (b"[1,2]", "The upstream rejected the request."),
        (b"", "The upstream rejected the request."),
    ],
)
def test_error_bodies_of_every_shape(body: bytes, message: str) -> None:
    error = upstream_error(400, body, {}, "m")
    assert error.http_status == 400 and error.message == message


def test_integer_error_code_becomes_a_string() -> None:
    body = b'{"error": {"message": "m", "code": 1234, "param": 5}}'
    error = upstream_error(400, body, {}, "m")
    assert error.code == "1234" and error.param is None
