"""The `openai` provider when things go wrong: upstream errors, broken and silent streams, clients
that leave. Before the first byte a failure is an HTTP error; after it, an error event and [DONE]."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import httpx
import openai
import pytest
from openai import OpenAI

from tests.conftest import UPSTREAM_MODEL
from tests.support.openai_calls import (
    DONE,
    MESSAGES,
    assert_error_shape,
    error_body,
    post,
    stream_events,
    text_of,
)
from tests.support.openai_upstream import OpenAIUpstream, Reply, chunk, sse
from tests.support.server import Gateway, free_port, start_gateway


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
    """The status and headers leave when the upstream accepts; the role chunk goes with the
    upstream's first chunk, whose metadata (system_fingerprint) every chunk carries. The upstream
    holds its first chunk until the client has the headers: a gateway that waited for the first
    token would time the client out instead."""
    meta = {"system_fingerprint": "fp_slow"}
    first_chunk = sse({**json.loads(chunk("slow")[6:]), **meta})
    release = threading.Event()
    clean_upstream.enqueue(Reply(chunks=[first_chunk, chunk(finish="stop"), DONE], release=release))
    body = {"model": UPSTREAM_MODEL, "messages": MESSAGES, "stream": True}
    headers = {"Authorization": f"Bearer {gateway.api_key}"}
    with httpx.stream("POST", gateway.v1 + "/chat/completions", json=body, headers=headers, timeout=15) as r:
        assert r.status_code == 200
        assert not release.is_set()
        release.set()
        lines = [line for line in r.iter_lines() if line.startswith("data: ")]
    role = json.loads(lines[0][6:])
    assert role["choices"][0]["delta"]["role"] == "assistant" and role["system_fingerprint"] == "fp_slow"
    assert lines[-1] == "data: [DONE]"
    assert '"slow"' in lines[1]


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
    message = events[-1]["error"]["message"]  # the gateway's words; the upstream's are in its log
    assert "reported an error mid-stream" in message and "overloaded" not in message


def test_upstream_error_mid_stream_raises_in_the_sdk(client: OpenAI, clean_upstream: OpenAIUpstream) -> None:
    clean_upstream.enqueue(
        Reply(
            chunks=[chunk(role="assistant", content=""), chunk("so far"), sse({"error": {"message": "boom"}})]
        )
    )
    stream = client.chat.completions.create(model=UPSTREAM_MODEL, messages=MESSAGES, stream=True)
    seen: list[str] = []
    with pytest.raises(openai.APIError, match="reported an error mid-stream"):
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
