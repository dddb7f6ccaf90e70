"""A whole Anthropic message -> Completion, and Anthropic's HTTP errors -> gateway errors."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sluicegate.core.completion import ToolCall
from sluicegate.errors import (
    InvalidRequestError,
    PayloadTooLargeError,
    RateLimitError,
    ServiceUnavailableError,
    UpstreamConfigError,
    UpstreamError,
    UpstreamTimeoutError,
)
from sluicegate.providers.anthropic.errors import upstream_error
from sluicegate.providers.anthropic.response import parse_message


def message(content: list[dict[str, Any]], stop_reason: str = "end_turn", **usage: int) -> dict[str, Any]:
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-x",
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 20, **usage},
    }


def test_text_thinking_and_tool_calls() -> None:
    completion = parse_message(
        message(
            [
                {"type": "thinking", "thinking": "Weather needed.", "signature": "EqQBsig=="},
                {"type": "text", "text": "Let me check. "},
                {
                    "type": "server_tool_use",
                    "id": "srvtoolu_1",
                    "name": "web_search",
                    "input": {"query": "x"},
                },
                {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": []},
                {"type": "text", "text": "Done.", "citations": [{"type": "web_search_result_location"}]},
                {"type": "tool_use", "id": "toolu_a", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "toolu_b", "name": "refresh", "input": {}},
            ],
            "tool_use",
            cache_read_input_tokens=5,
        ),
        "claude-test",
    )
    (choice,) = completion.choices
    assert choice.content == "Let me check. Done."
    assert choice.reasoning == "Weather needed."
    assert choice.reasoning_signature == "EqQBsig=="
    assert choice.tool_calls == [
        ToolCall("toolu_a", "get_weather", '{"city":"Paris"}'),
        ToolCall("toolu_b", "refresh", "{}"),
    ]
    assert (choice.finish_reason, choice.native_finish) == ("tool_calls", "tool_use")
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (15, 20)
    assert completion.usage.cached_tokens == 5
    assert completion.metadata is not None and completion.metadata.upstream_id == "msg_1"


def test_stop_sequence_and_refusal() -> None:
    stopped = parse_message(
        {**message([{"type": "text", "text": "a"}], "stop_sequence"), "stop_sequence": "##"}, "c"
    )
    assert (stopped.choices[0].finish_reason, stopped.choices[0].stop_sequence) == ("stop", "##")
    refused = parse_message(
        {**message([], "refusal"), "stop_details": {"type": "refusal", "explanation": "Not this."}}, "c"
    )
    assert refused.choices[0].finish_reason == "content_filter"
    assert refused.choices[0].refusal == "Not this."
    assert refused.choices[0].content is None


@pytest.mark.parametrize(
    "body",
    [[], {"type": "message"}, {"content": "text"}, {"content": ["text"]}],
)
def test_a_malformed_answer_is_a_502(body: Any) -> None:
    with pytest.raises(UpstreamError) as caught:
        parse_message(body, "claude-test")
    assert caught.value.http_status == 502


def error_body(kind: str, text: str) -> bytes:
    return json.dumps(
        {"type": "error", "error": {"type": kind, "message": text}, "request_id": "req_1"}
    ).encode()


@pytest.mark.parametrize(
    ("status", "kind", "cls", "client_status"),
    [
        (400, "invalid_request_error", InvalidRequestError, 400),
        (401, "authentication_error", UpstreamConfigError, 502),
        (403, "permission_error", UpstreamConfigError, 502),
        (404, "not_found_error", UpstreamConfigError, 502),
        (413, "request_too_large", PayloadTooLargeError, 413),
        (429, "rate_limit_error", RateLimitError, 429),
        (500, "api_error", UpstreamError, 502),
        (529, "overloaded_error", ServiceUnavailableError, 503),
        (504, "timeout_error", UpstreamTimeoutError, 504),
    ],
)
def test_http_errors(status: int, kind: str, cls: type[Exception], client_status: int) -> None:
    error = upstream_error(status, error_body(kind, "Something specific"), {}, "claude-test")
    assert type(error) is cls
    assert error.http_status == client_status
    assert "upstream of `claude-test`" in error.message
    if status >= 500:  # the gateway's own words, with the status; Anthropic's text goes to the log
        assert str(status) in error.message and "Something specific" not in error.message
    elif status not in (401, 403):
        assert "Something specific" in error.message and kind in error.message


def test_credentials_and_missing_models_name_the_entry_to_fix() -> None:
    refused = upstream_error(401, error_body("authentication_error", "invalid x-api-key"), {}, "claude-test")
    assert "api_key" in refused.message and "claude-test" in refused.message
    missing = upstream_error(404, error_body("not_found_error", "model: claude-nope"), {}, "claude-test")
    assert "upstream_model" in missing.message and "claude-nope" in missing.message


def test_retry_after_is_kept_for_429_and_529() -> None:
    limited = upstream_error(429, error_body("rate_limit_error", "slow down"), {"retry-after": "7"}, "c")
    assert limited.headers() == {"retry-after": "7"}
    overloaded = upstream_error(529, error_body("overloaded_error", "Overloaded"), {"retry-after": "3"}, "c")
    assert overloaded.headers() == {"retry-after": "3"}
    assert overloaded.to_dict()["error"]["code"] == "upstream_overloaded"
    assert upstream_error(529, b"", {}, "c").headers() == {}  # no wait promised that the upstream did not


def test_a_non_json_error_body_stays_in_the_log() -> None:
    error = upstream_error(502, b"<html>Bad gateway</html>", {}, "c")
    assert "<html>" not in error.message and "502" in error.message and error.http_status == 502
    refused = upstream_error(400, b"max_tokens: must be at most 8192", {}, "c")
    assert "max_tokens: must be at most 8192" in refused.message and refused.http_status == 400
