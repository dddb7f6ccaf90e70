"""The Gemini door's encoder in-process: a JSON-array stream stays valid JSON when it fails
after its first element, calls streamed in pieces go out whole once their choice finishes, and
each choice of several is its own candidate."""

from __future__ import annotations

import orjson

from sluicegate.api.gemini.errors import gemini_status
from sluicegate.api.gemini.response import GeminiStreamEncoder, finish_reason
from sluicegate.core.events import Finish, Started, TextDelta, ToolCallDelta, Usage
from sluicegate.errors import (
    AuthenticationError,
    InsufficientBalanceError,
    InvalidRequestError,
    ModelNotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitError,
    ServiceUnavailableError,
    UpstreamError,
    UpstreamTimeoutError,
)


def test_a_json_array_stream_that_fails_is_still_one_json_array() -> None:
    encoder = GeminiStreamEncoder("m", "r1", sse=False)
    data = (
        encoder.open(Started())
        + encoder.encode_batch([TextDelta("hi")])
        + encoder.fail(UpstreamError("gone"))
    )
    elements = orjson.loads(data)
    assert elements[0]["candidates"][0]["content"]["parts"] == [{"text": "hi"}]
    assert elements[1]["error"]["status"] == "INTERNAL" and elements[1]["error"]["code"] == 500


def test_an_sse_failure_is_googles_error_event() -> None:
    encoder = GeminiStreamEncoder("m", "r1", sse=True)
    data = encoder.open(Started()) + encoder.fail(RateLimitError("slow down"))
    assert data.startswith(b"data: ")
    assert orjson.loads(data[6:])["error"] == {
        "code": 429,
        "message": "slow down",
        "status": "RESOURCE_EXHAUSTED",
    }


def test_streamed_call_pieces_go_out_whole_when_the_choice_finishes() -> None:
    encoder = GeminiStreamEncoder("m", "r1", sse=True)
    encoder.open(Started(prompt_tokens=4))
    assert encoder.encode_batch([ToolCallDelta(0, '{"ci', "call_1", "get_weather")]) == b""
    assert encoder.encode_batch([ToolCallDelta(0, 'ty": "Rome"}')]) == b""
    finished = encoder.encode_batch([Finish("tool_calls")])
    part = orjson.loads(finished[6:])["candidates"][0]["content"]["parts"][0]
    assert part == {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}, "id": "call_1"}}
    last = orjson.loads(encoder.encode_batch([Usage(4, 6)]) + encoder.close()[6:])
    assert last["candidates"][0]["finishReason"] == "STOP"
    assert last["usageMetadata"] == {"promptTokenCount": 4, "candidatesTokenCount": 6, "totalTokenCount": 10}


def test_each_choice_is_its_own_candidate() -> None:
    encoder = GeminiStreamEncoder("m", "r1", sse=True)
    encoder.open(Started())
    chunk = orjson.loads(encoder.encode_batch([TextDelta("a", 0), TextDelta("b", 1)])[6:])
    assert [(c["index"], c["content"]["parts"]) for c in chunk["candidates"]] == [
        (0, [{"text": "a"}]),
        (1, [{"text": "b"}]),
    ]
    encoder.encode_batch([Finish("stop", 0), Finish("length", 1)])
    last = orjson.loads(encoder.close()[6:])
    assert [(c["index"], c["finishReason"]) for c in last["candidates"]] == [(0, "STOP"), (1, "MAX_TOKENS")]


def test_finish_reasons_in_geminis_words() -> None:
    assert finish_reason("length", None) == "MAX_TOKENS"
    assert finish_reason("content_filter", None) == "SAFETY"
    assert finish_reason("stop", "RECITATION") == "RECITATION"  # a Gemini upstream's own word
    assert finish_reason("stop", "end_turn") == "STOP"  # another provider's word is not Gemini's


def test_gateway_errors_in_googles_statuses() -> None:
    cases = [
        (InvalidRequestError("bad"), 400, "INVALID_ARGUMENT"),
        (PayloadTooLargeError("big"), 413, "INVALID_ARGUMENT"),
        (AuthenticationError("who"), 401, "UNAUTHENTICATED"),
        (PermissionDeniedError("no"), 403, "PERMISSION_DENIED"),
        (ModelNotFoundError("none"), 404, "NOT_FOUND"),
        (RateLimitError("slow"), 429, "RESOURCE_EXHAUSTED"),
        (InsufficientBalanceError("spent"), 429, "RESOURCE_EXHAUSTED"),
        (ServiceUnavailableError("busy"), 503, "UNAVAILABLE"),
        (UpstreamTimeoutError("late"), 504, "DEADLINE_EXCEEDED"),
        (UpstreamError("broke"), 500, "INTERNAL"),
    ]
    for error, status, name in cases:
        assert gemini_status(error) == (status, name), error
