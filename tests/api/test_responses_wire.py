"""`/v1/responses` bytes on the wire, read raw: the SSE framing, the documented event order for
each kind of content, OpenAI's schema for every event, and the errors before and after the
first byte."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import UPSTREAM_MODEL
from tests.support.openai_calls import assert_error_shape, tool_delta, usage_chunk
from tests.support.openai_spec import spec_validator
from tests.support.openai_upstream import OpenAIUpstream, Reply, chunk, sse
from tests.support.server import Gateway

DONE = b"data: [DONE]\n\n"


def auth(gateway: Gateway) -> dict[str, str]:
    return {"Authorization": f"Bearer {gateway.api_key}"}


def post(gateway: Gateway, body: Any, **extra: Any) -> httpx.Response:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    headers = {**auth(gateway), "Content-Type": "application/json", **extra}
    return httpx.post(gateway.v1 + "/responses", content=content, headers=headers, timeout=120)


def stream(gateway: Gateway, **body: Any) -> list[dict[str, Any]]:
    response = post(gateway, {"model": UPSTREAM_MODEL, "input": "Hi", "stream": True, **body})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-request-id"]
    return frames(response.content)


def frames(raw: bytes) -> list[dict[str, Any]]:
    """Every event as `event: <type>\\ndata: <json>\\n\\n`, its name its `type`, numbered from 0."""
    assert b"\r" not in raw and raw.endswith(b"\n\n"), raw[-200:]
    assert b"[DONE]" not in raw  # the Responses API has no [DONE] terminator
    events = []
    for block in raw[:-2].split(b"\n\n"):
        if block == b": keep-alive":  # sent while a slow model keeps the stream waiting
            continue
        lines = block.split(b"\n")
        assert len(lines) == 2 and lines[0].startswith(b"event: ") and lines[1].startswith(b"data: "), block
        data = orjson.loads(lines[1][len(b"data: ") :])
        assert lines[0][len(b"event: ") :].decode() == data["type"]
        events.append(data)
    assert [event["sequence_number"] for event in events] == list(range(len(events)))
    return events


def types(events: list[dict[str, Any]]) -> list[str]:
    return [event["type"] for event in events]


def assert_valid(events: list[dict[str, Any]], shared_fixtures: Path) -> None:
    validator = spec_validator(shared_fixtures, "ResponseStreamEvent")
    for event in events:
        errors = [error.message for error in validator.iter_errors(event)]
        assert not errors, (event["type"], errors)


def test_a_text_stream_event_by_event(
    gateway: Gateway, clean_upstream: OpenAIUpstream, shared_fixtures: Path
) -> None:
    clean_upstream.enqueue(
        Reply(
            chunks=[
                chunk(role="assistant", content=""),
                chunk("Hello"),
                chunk(" world"),
                chunk(finish="stop"),
                usage_chunk(12, 2),
                DONE,
            ]
        )
    )
    events = stream(gateway, instructions="Be kind.", temperature=0.5)
    assert_valid(events, shared_fixtures)
    assert types(events) == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    created = events[0]["response"]
    assert created["status"] == "in_progress" and created["model"] == UPSTREAM_MODEL
    assert created["instructions"] == "Be kind." and created["temperature"] == 0.5
    assert [e["delta"] for e in events if e["type"] == "response.output_text.delta"] == ["Hello", " world"]
    item_ids = {e.get("item_id") or e.get("item", {}).get("id") for e in events[2:-1]}
    assert len(item_ids) == 1
    final = events[-1]["response"]
    assert final["id"] == created["id"] and final["status"] == "completed"
    assert final["output"][0]["content"][0]["text"] == "Hello world"
    assert final["usage"]["input_tokens"] == 12 and final["usage"]["output_tokens"] == 2
    assert clean_upstream.requests[-1]["messages"] == [
        {"role": "system", "content": "Be kind."},
        {"role": "user", "content": "Hi"},
    ]


def test_reasoning_then_text_then_a_tool_call(
    gateway: Gateway, clean_upstream: OpenAIUpstream, shared_fixtures: Path
) -> None:
    clean_upstream.enqueue(
        Reply(
            chunks=[
                chunk(role="assistant", content=None, reasoning_content="Need the"),
                chunk(reasoning_content=" weather."),
                chunk("Checking."),
                chunk(tool_calls=[tool_delta(0, "", id="call_7", name="get_weather")]),
                chunk(tool_calls=[tool_delta(0, '{"city":"Oslo"}')]),
                chunk(finish="tool_calls"),
                usage_chunk(30, 15, completion_tokens_details={"reasoning_tokens": 5}),
                DONE,
            ]
        )
    )
    tools = [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}]
    events = stream(gateway, tools=tools)
    assert_valid(events, shared_fixtures)
    assert types(events)[2:] == [
        "response.output_item.added",
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done",
        "response.reasoning_summary_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    final = events[-1]["response"]
    assert [item["type"] for item in final["output"]] == ["reasoning", "message", "function_call"]
    assert [e["output_index"] for e in events if e["type"] == "response.output_item.added"] == [0, 1, 2]
    assert final["output"][0]["summary"] == [{"type": "summary_text", "text": "Need the weather."}]
    assert final["output"][2]["call_id"] == "call_7" and final["output"][2]["arguments"] == '{"city":"Oslo"}'
    assert final["usage"]["output_tokens_details"] == {"reasoning_tokens": 5}


def test_a_refusal_streams_as_refusal_events(
    gateway: Gateway, clean_upstream: OpenAIUpstream, shared_fixtures: Path
) -> None:
    clean_upstream.enqueue(
        Reply(
            chunks=[
                chunk(role="assistant", refusal=""),
                chunk(refusal="I can't"),
                chunk(refusal=" do that."),
                chunk(finish="stop"),
                DONE,
            ]
        )
    )
    events = stream(gateway)
    assert_valid(events, shared_fixtures)
    assert types(events)[3:-2] == [
        "response.content_part.added",
        "response.refusal.delta",
        "response.refusal.delta",
        "response.refusal.done",
        "response.content_part.done",
    ]
    assert events[3]["part"] == {"type": "refusal", "refusal": ""}
    assert events[-1]["response"]["output"][0]["content"] == [
        {"type": "refusal", "refusal": "I can't do that."}
    ]


def test_the_token_limit_ends_with_response_incomplete(
    gateway: Gateway, clean_upstream: OpenAIUpstream, shared_fixtures: Path
) -> None:
    clean_upstream.enqueue(
        Reply(chunks=[chunk("Once"), chunk(" upon"), chunk(finish="length"), usage_chunk(4, 2), DONE])
    )
    events = stream(gateway, max_output_tokens=2)
    assert_valid(events, shared_fixtures)
    assert types(events)[-2:] == ["response.output_item.done", "response.incomplete"]
    final = events[-1]["response"]
    assert final["status"] == "incomplete" and final["incomplete_details"] == {"reason": "max_output_tokens"}
    assert clean_upstream.requests[-1]["max_completion_tokens"] == 2


def test_the_embedded_models_stream_and_whole_answer_match_openais_schemas(
    gateway: Gateway, shared_fixtures: Path
) -> None:
    response = post(
        gateway, {"model": gateway.model, "input": "Hello!", "max_output_tokens": 6, "stream": True}
    )
    assert response.status_code == 200
    events = frames(response.content)
    assert_valid(events, shared_fixtures)
    assert types(events)[:3] == ["response.created", "response.in_progress", "response.output_item.added"]
    whole = post(gateway, {"model": gateway.model, "input": "Hello!", "max_output_tokens": 6})
    assert whole.status_code == 200 and whole.headers["content-type"] == "application/json"
    body = whole.json()
    errors = [e.message for e in spec_validator(shared_fixtures, "Response").iter_errors(body)]
    assert not errors
    assert "output_text" not in body  # an SDK convenience, not on the wire (as OpenAI)


@pytest.mark.parametrize(
    "tail",
    [
        [sse({"error": {"message": "overloaded", "type": "server_error"}})],  # an error event mid-stream
        [],  # the upstream hangs up without finishing
    ],
    ids=["error-event", "cut-off"],
)
def test_a_failure_after_the_first_byte_is_response_failed_then_the_end(
    gateway: Gateway, clean_upstream: OpenAIUpstream, shared_fixtures: Path, tail: list[bytes]
) -> None:
    clean_upstream.enqueue(Reply(chunks=[chunk(role="assistant", content=""), chunk("Half"), *tail]))
    events = stream(gateway)
    assert_valid(events, shared_fixtures)
    assert types(events) == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.failed",
    ]
    failed = events[-1]["response"]
    assert failed["status"] == "failed" and failed["error"]["code"] == "server_error"
    assert "upstream-gpt" in failed["error"]["message"]
    assert (
        failed["output"][0]["status"] == "incomplete" and failed["output"][0]["content"][0]["text"] == "Half"
    )
    stored = httpx.get(f"{gateway.v1}/responses/{failed['id']}", headers=auth(gateway))
    assert stored.status_code == 200 and stored.json()["status"] == "failed"


def test_errors_before_the_first_byte_are_plain_http_errors(
    gateway: Gateway, clean_upstream: OpenAIUpstream
) -> None:
    clean_upstream.enqueue(Reply(status=500, body=b'{"error": {"message": "boom", "type": "server_error"}}'))
    assert_error_shape(post(gateway, {"model": UPSTREAM_MODEL, "input": "Hi", "stream": True}), 502)
    error = assert_error_shape(post(gateway, b'{"model": "x", "input": '), 400)
    assert error["code"] == "invalid_json"
    error = assert_error_shape(
        post(gateway, {"model": UPSTREAM_MODEL, "input": [{"role": "user", "content": 5}]}), 400
    )
    assert error["param"] == "input[0].content"
    unauthorised = httpx.post(
        gateway.v1 + "/responses", json={"model": UPSTREAM_MODEL, "input": "Hi"}, timeout=10
    )
    assert assert_error_shape(unauthorised, 401)["code"] == "invalid_api_key"
    too_big = post(gateway, {"model": UPSTREAM_MODEL, "input": "x" * 300_000})
    assert_error_shape(too_big, 413)
    local_tools = post(
        gateway,
        {"model": gateway.model, "input": "Hi", "tools": [{"type": "function", "name": "f"}], "stream": True,
         "tool_choice": {"type": "function", "name": "g"}},
    )  # fmt: skip
    assert assert_error_shape(local_tools, 400)["param"] == "tool_choice"  # found by the model, still before a byte


def test_stored_responses_over_plain_http(gateway: Gateway, clean_upstream: OpenAIUpstream) -> None:
    created = post(gateway, {"model": UPSTREAM_MODEL, "input": "Keep me"}).json()
    url = f"{gateway.v1}/responses/{created['id']}"
    assert httpx.get(url, headers=auth(gateway)).json() == created
    listed = httpx.get(url + "/input_items", headers=auth(gateway)).json()
    assert listed["object"] == "list" and listed["has_more"] is False
    assert [item["content"] for item in listed["data"]] == [[{"type": "input_text", "text": "Keep me"}]]
    assert listed["first_id"] == listed["last_id"] == listed["data"][0]["id"]
    assert_error_shape(httpx.get(url + "/input_items?limit=0", headers=auth(gateway)), 400)
    assert_error_shape(httpx.get(url + "?stream=true", headers=auth(gateway)), 400)
    deleted = httpx.delete(url, headers=auth(gateway))
    assert deleted.json() == {"id": created["id"], "object": "response.deleted", "deleted": True}
    missing = assert_error_shape(httpx.get(url, headers=auth(gateway)), 404)
    assert missing["message"] == f"Response with id '{created['id']}' not found."
    assert_error_shape(httpx.get(url), 401)
    assert clean_upstream.requests[-1]["messages"] == [{"role": "user", "content": "Keep me"}]


def test_the_model_sees_the_whole_chain_of_previous_responses(
    gateway: Gateway, clean_upstream: OpenAIUpstream
) -> None:
    first = post(gateway, {"model": UPSTREAM_MODEL, "input": "one", "instructions": "Old rules."}).json()
    second = post(
        gateway, {"model": UPSTREAM_MODEL, "input": "two", "previous_response_id": first["id"]}
    ).json()
    post(
        gateway,
        {
            "model": UPSTREAM_MODEL,
            "input": "three",
            "previous_response_id": second["id"],
            "instructions": "New rules.",
        },
    )
    assert clean_upstream.requests[-1]["messages"] == [
        {"role": "system", "content": "New rules."},  # instructions are not carried over, as OpenAI
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "one"},
        {"role": "user", "content": "two"},
        {"role": "assistant", "content": "two"},
        {"role": "user", "content": "three"},
    ]


def test_a_client_that_leaves_stops_the_upstream_and_nothing_is_stored(
    gateway: Gateway, clean_upstream: OpenAIUpstream
) -> None:
    clean_upstream.enqueue(
        Reply(chunks=[chunk(role="assistant", content=""), chunk("Hello")], hang_after=True)
    )
    body = {"model": UPSTREAM_MODEL, "input": "Hi", "stream": True}
    with httpx.stream("POST", gateway.v1 + "/responses", json=body, headers=auth(gateway), timeout=15) as r:
        assert r.status_code == 200
        seen: list[dict[str, Any]] = []
        for line in r.iter_lines():
            if line.startswith("data: "):
                seen.append(orjson.loads(line[len("data: ") :]))
            if seen and seen[-1]["type"] == "response.output_text.delta":
                break
    assert clean_upstream.wait_for_disconnects(1, timeout=5)
    response_id = seen[0]["response"]["id"]
    assert httpx.get(f"{gateway.v1}/responses/{response_id}", headers=auth(gateway)).status_code == 404
