"""Keep-alive comments while a stream waits, through a live gateway.

The gateway runs with tiny keep-alive intervals and the upstream waits far longer than them,
so the comments must appear; nothing here measures time."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import orjson
import pytest

from tests.support.openai_upstream import OpenAIUpstream, Reply, chunk
from tests.support.server import Gateway, start_gateway

KA = b": keep-alive\n\n"
WORDS = ["Hello", " there", "!"]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, upstream: OpenAIUpstream) -> Iterator[Gateway]:
    config = {
        "server": {"keepalive_first_s": 0.02, "keepalive_interval_s": 0.02},
        "models": [{"name": "up", "provider": "openai", "base_url": upstream.base_url}],
    }
    server = start_gateway(tmp_path_factory.mktemp("keepalive"), config)
    yield server
    server.stop()


def answer(delay_s: float = 0.0, wait_s: float = 0.0) -> Reply:
    chunks = [chunk(role="assistant", content="")] + [chunk(word) for word in WORDS]
    return Reply(chunks=[*chunks, chunk(finish="stop"), b"data: [DONE]\n\n"], delay_s=delay_s, wait_s=wait_s)


def raw_stream(gateway: Gateway) -> httpx.Response:
    body = {"model": "up", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    with httpx.stream(
        "POST",
        gateway.v1 + "/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {gateway.api_key}"},
        timeout=30,
    ) as response:
        response.read()
    return response


def data_events(raw: bytes) -> list[bytes]:
    return [block for block in raw.split(b"\n\n") if block and block != b": keep-alive"]


def test_a_slow_upstream_gets_keepalives_before_the_first_byte_of_the_answer(
    gateway: Gateway, clean_upstream: OpenAIUpstream
) -> None:
    clean_upstream.enqueue(answer(wait_s=0.5))
    response = raw_stream(gateway)
    assert response.status_code == 200
    assert response.content.startswith(KA)
    events = data_events(response.content)
    assert all(event.startswith(b"data: ") for event in events)
    assert events[-1] == b"data: [DONE]"
    text = "".join(orjson.loads(e[6:])["choices"][0]["delta"].get("content") or "" for e in events[:-1])
    assert text == "".join(WORDS)


def test_keepalives_fill_the_silences_between_chunks(
    gateway: Gateway, clean_upstream: OpenAIUpstream
) -> None:
    clean_upstream.enqueue(answer(delay_s=0.3))
    raw = raw_stream(gateway).content
    first_word = raw.index(b'"content":"Hello"')
    last_word = raw.index(b'"content":"!"')
    assert KA in raw[first_word:last_word]  # silences between chunks, not only before them
    assert raw.endswith(b"data: [DONE]\n\n")


def test_a_failure_after_a_keepalive_is_an_error_event_then_done(
    gateway: Gateway, clean_upstream: OpenAIUpstream
) -> None:
    error = {"error": {"message": "The engine is overloaded", "type": "server_error", "code": None}}
    clean_upstream.enqueue(Reply(status=503, body=orjson.dumps(error), wait_s=0.5))
    response = raw_stream(gateway)
    assert response.status_code == 200  # committed by the first keep-alive
    assert response.content.startswith(KA)
    events = data_events(response.content)
    assert events[-1] == b"data: [DONE]"
    assert orjson.loads(events[0][6:])["choices"][0]["delta"]["role"] == "assistant"  # opened as usual
    failure = orjson.loads(events[-2][6:])["error"]
    assert set(failure) >= {"message", "type", "code", "param"}
    assert "503" in failure["message"] and "overloaded" not in failure["message"]  # the upstream's text: the log


def test_the_openai_sdk_reads_through_keepalives(gateway: Gateway, clean_upstream: OpenAIUpstream) -> None:
    clean_upstream.enqueue(answer(wait_s=0.3, delay_s=0.1))
    client = openai.OpenAI(api_key=gateway.api_key, base_url=gateway.v1, max_retries=0)
    stream = client.chat.completions.create(
        model="up", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "".join(WORDS)

    clean_upstream.enqueue(Reply(status=503, body=b'{"error": {"message": "down"}}', wait_s=0.3))
    stream = client.chat.completions.create(
        model="up", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    with pytest.raises(openai.APIError, match="unavailable with HTTP 503"):
        for _ in stream:
            pass


def test_keepalives_can_be_turned_off(tmp_path: Path, clean_upstream: OpenAIUpstream) -> None:
    config = {
        "server": {"keepalive": False, "keepalive_first_s": 0.02},
        "models": [{"name": "up", "provider": "openai", "base_url": clean_upstream.base_url}],
    }
    server = start_gateway(tmp_path, config)
    try:
        clean_upstream.enqueue(answer(wait_s=0.3, delay_s=0.1))
        raw = raw_stream(server).content
        assert KA not in raw
        assert raw.startswith(b"data: ") and raw.endswith(b"data: [DONE]\n\n")
    finally:
        server.stop()


def test_the_responses_door_keeps_its_event_order_behind_keepalives(
    gateway: Gateway, clean_upstream: OpenAIUpstream
) -> None:
    clean_upstream.enqueue(Reply(status=503, body=b'{"error": {"message": "down"}}', wait_s=0.5))
    body = {"model": "up", "input": "hi", "stream": True, "store": False}
    with httpx.stream(
        "POST",
        gateway.v1 + "/responses",
        json=body,
        headers={"Authorization": f"Bearer {gateway.api_key}"},
        timeout=30,
    ) as response:
        raw = response.read()
    assert response.status_code == 200
    assert raw.startswith(KA)
    kinds = [line[len(b"event: ") :] for line in raw.split(b"\n") if line.startswith(b"event: ")]
    assert kinds == [b"response.created", b"response.in_progress", b"response.failed"]


def test_the_messages_door_keeps_alive_with_anthropics_ping(
    gateway: Gateway, clean_upstream: OpenAIUpstream
) -> None:
    import anthropic

    ping = b'event: ping\ndata: {"type":"ping"}\n\n'
    clean_upstream.enqueue(answer(wait_s=0.5, delay_s=0.1))
    body = {"model": "up", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}], "stream": True}
    with httpx.stream(
        "POST", gateway.v1 + "/messages", json=body, headers={"x-api-key": gateway.api_key}, timeout=30
    ) as response:
        raw = response.read()
    assert response.status_code == 200
    assert raw.startswith(ping + ping)  # Anthropic's own keep-alive, not an SSE comment
    assert KA not in raw
    assert b"event: message_start" in raw and raw.endswith(
        b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
    )

    clean_upstream.enqueue(answer(wait_s=0.3, delay_s=0.1))
    client = anthropic.Anthropic(api_key=gateway.api_key, base_url=gateway.base_url, max_retries=0)
    with client.messages.stream(
        model="up", max_tokens=50, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        assert "".join(stream.text_stream) == "".join(WORDS)
