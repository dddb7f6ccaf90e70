"""Resumable chat-completion and Messages streams (opt-in) against a live gateway: every event
has an `id:` line, and `GET .../{id}/stream` with `Last-Event-ID` (or `?after=N`) replays what
came after it, byte for byte, then follows the live events to the end."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import orjson
import pytest

from tests.support.anthropic_upstream import AnthropicUpstream
from tests.support.openai_calls import usage_chunk
from tests.support.openai_upstream import OpenAIUpstream, Reply, chunk
from tests.support.server import Gateway, cli, start_gateway

DONE = b"data: [DONE]\n\n"
WORDS = ["One ", "two ", "three ", "four ", "five."]


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, upstream: OpenAIUpstream, anthropic_upstream: AnthropicUpstream
) -> Iterator[Gateway]:
    config = {
        "models": [
            {"name": "up-openai", "provider": "openai", "base_url": upstream.base_url, "api_key": "k"},
            {"name": "up-always", "provider": "openai", "base_url": upstream.base_url, "api_key": "k", "resumable": True},
            {"name": "up-claude", "provider": "anthropic", "base_url": anthropic_upstream.base_url, "api_key": "k"},
        ],
    }
    server = start_gateway(tmp_path_factory.mktemp("resumable"), config)
    yield server
    server.stop()


def text_reply(release: threading.Event | None = None, release_at: int = 0) -> Reply:
    chunks = [chunk(role="assistant", content="")] + [chunk(word) for word in WORDS]
    chunks += [chunk(finish="stop"), usage_chunk(5, len(WORDS)), DONE]
    return Reply(chunks=chunks, release=release, release_at=release_at)


def events_of(body: bytes) -> list[bytes]:
    return [part + b"\n\n" for part in body.split(b"\n\n") if part]


def chat_text(body: bytes) -> str:
    out = ""
    for line in body.split(b"\n"):
        if line.startswith(b"data: {"):
            choices = orjson.loads(line[6:])["choices"]
            out += (choices[0]["delta"].get("content") or "") if choices else ""
    return out


def test_a_chat_stream_resumes_after_its_last_event_id(gateway: Gateway, clean_upstream: OpenAIUpstream) -> None:
    release = threading.Event()
    clean_upstream.enqueue(text_reply(release, release_at=3))
    headers = {"authorization": f"Bearer {gateway.api_key}"}
    body = {"model": "up-openai", "messages": [{"role": "user", "content": "count"}], "stream": True, "store": True}
    read = b""
    with httpx.stream("POST", gateway.v1 + "/chat/completions", json=body, headers=headers, timeout=30) as response:
        assert response.headers["x-sluicegate-resumable"] == "true"
        for data in response.iter_raw():
            read += data
            if read.count(b"\n\n") >= 2:
                break
    first = b"".join(events_of(read)[:2])
    assert first.startswith(b"id: 0\ndata: {") and b"\n\nid: 1\ndata: {" in first
    completion_id = orjson.loads(first.split(b"data: ", 1)[1].split(b"\n", 1)[0])["id"]
    release.set()
    url = f"{gateway.v1}/chat/completions/{completion_id}/stream"
    rest = httpx.get(url, headers={**headers, "last-event-id": "1"}, timeout=30).content
    whole = httpx.get(url + "?after=-1", headers=headers, timeout=30).content
    assert first + rest == whole
    assert whole.endswith(DONE) and chat_text(whole) == "".join(WORDS)
    ids = [int(event.split(b"\n", 1)[0][4:]) for event in events_of(whole)]
    assert ids == list(range(len(ids)))


def test_a_model_entry_makes_every_stream_resumable(gateway: Gateway, clean_upstream: OpenAIUpstream) -> None:
    clean_upstream.enqueue(text_reply())
    headers = {"authorization": f"Bearer {gateway.api_key}"}
    body = {"model": "up-always", "messages": [{"role": "user", "content": "count"}], "stream": True}
    first = httpx.post(gateway.v1 + "/chat/completions", json=body, headers=headers, timeout=30).content
    assert first.startswith(b"id: 0\n") and first.endswith(DONE)
    completion_id = orjson.loads(first.split(b"data: ", 1)[1].split(b"\n", 1)[0])["id"]
    again = httpx.get(f"{gateway.v1}/chat/completions/{completion_id}/stream?after=-1", headers=headers, timeout=30)
    assert again.content == first


def test_the_default_stream_keeps_no_copy(gateway: Gateway, clean_upstream: OpenAIUpstream) -> None:
    clean_upstream.enqueue(text_reply())
    headers = {"authorization": f"Bearer {gateway.api_key}"}
    body = {"model": "up-openai", "messages": [{"role": "user", "content": "count"}], "stream": True}
    response = httpx.post(gateway.v1 + "/chat/completions", json=body, headers=headers, timeout=30)
    assert response.content.startswith(b"data: {") and b"\nid: " not in response.content
    completion_id = orjson.loads(response.content.split(b"data: ", 1)[1].split(b"\n", 1)[0])["id"]
    missing = httpx.get(f"{gateway.v1}/chat/completions/{completion_id}/stream", headers=headers, timeout=30)
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "invalid_request_error"


def test_a_stream_is_resumed_by_its_own_key_only(gateway: Gateway, clean_upstream: OpenAIUpstream) -> None:
    clean_upstream.enqueue(text_reply())
    headers = {"authorization": f"Bearer {gateway.api_key}", "x-sluicegate-resumable": "true"}
    body = {"model": "up-openai", "messages": [{"role": "user", "content": "count"}], "stream": True}
    first = httpx.post(gateway.v1 + "/chat/completions", json=body, headers=headers, timeout=30).content
    completion_id = orjson.loads(first.split(b"data: ", 1)[1].split(b"\n", 1)[0])["id"]
    other = cli("keys", "create", "--name", "other", data_dir=gateway.data_dir).strip().splitlines()[-1]
    url = f"{gateway.v1}/chat/completions/{completion_id}/stream"
    assert httpx.get(url, headers={"authorization": f"Bearer {other}"}, timeout=30).status_code == 404


def test_a_messages_stream_resumes_in_anthropics_format(gateway: Gateway) -> None:
    headers = {"x-api-key": gateway.api_key, "anthropic-version": "2023-06-01", "x-sluicegate-resumable": "true"}
    body = {
        "model": "up-claude",
        "max_tokens": 64,
        "stream": True,
        "messages": [{"role": "user", "content": "say it back"}],
    }
    first = httpx.post(gateway.base_url + "/v1/messages", json=body, headers=headers, timeout=30).content
    events = events_of(first)
    assert events[0].startswith(b"id: 0\nevent: message_start\ndata: {")
    assert events[-1].split(b"\n")[1] == b"event: message_stop"
    message_id = orjson.loads(events[0].split(b"data: ", 1)[1].split(b"\n", 1)[0])["message"]["id"]
    url = f"{gateway.base_url}/v1/messages/{message_id}/stream"
    rest = httpx.get(url, headers={**headers, "last-event-id": "2"}, timeout=30).content
    assert rest == b"".join(events[3:])
    unknown = httpx.get(f"{gateway.base_url}/v1/messages/msg_nope/stream", headers=headers, timeout=30)
    assert unknown.status_code == 404 and unknown.json()["type"] == "error"
