"""Two gateway processes sharing PostgreSQL and Redis: a stream begun through one is resumed
through the other (a background response with the openai SDK; a chat stream whose client
dropped the TCP connection, byte for byte), and a response whose process died ends `failed`."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import openai
import orjson
import pytest

from tests.governance.conftest import Backend
from tests.governance.support import FREE, GovGateway, gateway_config, start
from tests.support.openai_calls import usage_chunk
from tests.support.openai_upstream import OpenAIUpstream, Reply, chunk

DONE = b"data: [DONE]\n\n"
WORDS = ["Rivers ", "find ", "the ", "sea ", "in ", "the ", "end."]


@pytest.fixture
def replicas(pg_backend: Backend, tmp_path: Path, upstream: OpenAIUpstream) -> Iterator[list[GovGateway]]:
    upstream.reset()
    config = gateway_config(upstream, pg_backend, heartbeat_s=0.5)
    config["streams"] = {"poll_s": 0.5}
    config["responses"] = {"background_per_key": 1}  # counted across both replicas (in Redis)
    first = start(tmp_path / "one", config)
    try:
        second = start(tmp_path / "two", config, admin_key=first.admin_key)
        try:
            yield [first, second]
        finally:
            second.stop()
    finally:
        first.stop()


def text_reply(release: threading.Event | None = None, release_at: int = 0) -> Reply:
    chunks = [chunk(role="assistant", content="")] + [chunk(word) for word in WORDS]
    chunks += [chunk(finish="stop"), usage_chunk(9, len(WORDS)), DONE]
    return Reply(chunks=chunks, release=release, release_at=release_at)


def sdks(replicas: list[GovGateway], secret: str) -> list[openai.OpenAI]:
    return [openai.OpenAI(api_key=secret, base_url=g.v1, max_retries=0, timeout=30) for g in replicas]


def deltas(events: list[Any]) -> str:
    return "".join(event.delta for event in events if event.type == "response.output_text.delta")


def test_a_background_response_begun_on_one_replica_resumes_on_the_other(
    replicas: list[GovGateway], upstream: OpenAIUpstream
) -> None:
    _, secret = replicas[0].new_key()
    one, two = sdks(replicas, secret)
    release = threading.Event()
    upstream.enqueue(text_reply(release, release_at=3))
    seen: list[Any] = []
    stream = one.responses.create(model=FREE, input="Tell me.", background=True, stream=True)
    for event in stream:
        seen.append(event)
        if event.type == "response.output_text.delta":
            break
    stream.close()
    response_id, cursor = seen[0].response.id, seen[-1].sequence_number
    release.set()
    rest = list(two.responses.retrieve(response_id, stream=True, starting_after=cursor))
    assert [event.sequence_number for event in rest] == list(range(cursor + 1, cursor + 1 + len(rest)))
    assert rest[-1].type == "response.completed"
    assert deltas(seen) + deltas(rest) == "".join(WORDS)
    assert two.responses.retrieve(response_id).output_text == "".join(WORDS)


def test_the_per_key_limit_on_background_responses_holds_across_replicas(
    replicas: list[GovGateway], upstream: OpenAIUpstream
) -> None:
    _, secret = replicas[0].new_key()
    one, two = sdks(replicas, secret)
    release = threading.Event()
    upstream.enqueue(text_reply(release, release_at=3))
    first = one.responses.create(model=FREE, input="Tell me.", background=True)
    with pytest.raises(openai.RateLimitError) as refused:
        two.responses.create(model=FREE, input="Tell me too.", background=True)
    assert refused.value.code == "rate_limit_exceeded" and "at most 1" in refused.value.message
    release.set()
    list(one.responses.retrieve(first.id, stream=True))  # to its end: the room is free again
    upstream.enqueue(text_reply())
    second = two.responses.create(model=FREE, input="Tell me too.", background=True)
    assert list(two.responses.retrieve(second.id, stream=True))[-1].type == "response.completed"


def test_a_response_whose_replica_died_ends_failed(replicas: list[GovGateway], upstream: OpenAIUpstream) -> None:
    _, secret = replicas[0].new_key()
    one, two = sdks(replicas, secret)
    never = threading.Event()
    upstream.enqueue(text_reply(never, release_at=3))
    created = one.responses.create(model=FREE, input="Tell me.", background=True)
    deadline = time.monotonic() + 30
    while two.responses.retrieve(created.id).status == "queued" and time.monotonic() < deadline:
        time.sleep(0.05)
    replicas[0].gateway.process.kill()  # no shutdown: it dies as a crash does
    replicas[0].gateway.process.wait(60)
    events = list(two.responses.retrieve(created.id, stream=True))
    assert events[-1].type == "response.failed"
    failed = two.responses.retrieve(created.id)
    assert failed.status == "failed" and failed.error is not None and failed.error.code == "server_error"
    never.set()


def _post_and_drop(base_url: str, secret: str, body: dict[str, Any], keep_events: int) -> bytes:
    """A raw HTTP/1.1 request whose client reads `keep_events` SSE events and then closes the
    TCP connection without a word; what it read."""
    url = urlparse(base_url)
    payload = orjson.dumps(body)
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: {url.netloc}\r\nAuthorization: Bearer {secret}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection((url.hostname, url.port), timeout=30) as sock:
        sock.sendall(head + payload)
        received = b""
        while received.count(b"\n\n") < keep_events:  # (the headers end in CRLF CRLF)
            data = sock.recv(65536)
            assert data, received
            received += data
    headers, _, body_bytes = received.partition(b"\r\n\r\n")
    assert b" 200 " in headers.split(b"\r\n", 1)[0]
    return dechunk(body_bytes, keep_events)


def dechunk(data: bytes, events: int) -> bytes:
    """The first `events` SSE events of a chunked HTTP body."""
    out = b""
    while data:
        size_line, found, rest = data.partition(b"\r\n")
        if not found:
            break
        size = int(size_line, 16)
        if size == 0:
            break
        out += rest[:size]
        data = rest[size + 2 :]
    return b"".join(part + b"\n\n" for part in out.split(b"\n\n")[:events])


def _chat_dropped_after_two_events(
    replica: GovGateway, upstream: OpenAIUpstream, release: threading.Event
) -> tuple[str, bytes, str]:
    """A resumable chat stream on `replica` whose client left after its first two events (the
    upstream holds the rest until `release`): the key, the bytes read, the completion id."""
    _, secret = replica.new_key()
    upstream.enqueue(text_reply(release, release_at=3))
    body = {"model": FREE, "messages": [{"role": "user", "content": "hi"}], "stream": True, "store": True}
    first = _post_and_drop(replica.gateway.base_url, secret, body, keep_events=2)
    completion_id = orjson.loads(first.split(b"data: ", 1)[1].split(b"\n", 1)[0])["id"]
    return secret, first, str(completion_id)


def test_a_chat_stream_dropped_on_one_replica_resumes_exactly_on_the_other(
    replicas: list[GovGateway], upstream: OpenAIUpstream
) -> None:
    release = threading.Event()
    secret, first, completion_id = _chat_dropped_after_two_events(replicas[0], upstream, release)
    assert first.startswith(b"id: 0\ndata: ") and b"\nid: 1\ndata: " in first
    release.set()
    headers = {"authorization": f"Bearer {secret}", "last-event-id": "1"}
    url = f"{replicas[1].gateway.base_url}/v1/chat/completions/{completion_id}/stream"
    with httpx.stream("GET", url, headers=headers, timeout=30) as response:
        assert response.status_code == 200
        rest = response.read()
    assert rest.startswith(b"id: 2\n") and rest.endswith(b"data: [DONE]\n\n")
    with httpx.stream("GET", url + "?after=-1", headers={"authorization": f"Bearer {secret}"}, timeout=30) as again:
        whole = again.read()
    assert first + rest == whole  # what the first connection would have received, byte for byte
    text = "".join(
        (orjson.loads(line[6:])["choices"] or [{}])[0].get("delta", {}).get("content") or ""
        for line in whole.split(b"\n")
        if line.startswith(b"data: {")
    )
    assert text == "".join(WORDS)


def test_a_cancel_sent_to_the_other_replica_stops_the_generation_and_bills_what_was_made(
    replicas: list[GovGateway], upstream: OpenAIUpstream
) -> None:
    key_id, secret = replicas[0].new_key()
    one, two = sdks(replicas, secret)
    release = threading.Event()
    upstream.enqueue(text_reply(release, release_at=3))
    stream = one.responses.create(model=FREE, input="Tell me.", background=True, stream=True)
    seen = []
    for event in stream:
        seen.append(event)
        if event.type == "response.output_text.delta":
            break
    response_id = seen[0].response.id
    cancelled = two.responses.cancel(response_id)  # reaches replica one through Redis
    assert cancelled.status == "cancelled"
    assert upstream.wait_for_disconnects(1)
    release.set()
    assert one.responses.retrieve(response_id).output_text == "Rivers find "
    rows = replicas[0].rows(key_id, 1)
    assert len(rows) == 1 and rows[0]["status"] == 499 and rows[0]["completion_tokens"] > 0


def test_a_chat_stream_whose_replica_died_ends_with_an_error_event(
    replicas: list[GovGateway], upstream: OpenAIUpstream
) -> None:
    never = threading.Event()
    secret, _, completion_id = _chat_dropped_after_two_events(replicas[0], upstream, never)
    replicas[0].gateway.process.kill()
    replicas[0].gateway.process.wait(60)
    url = f"{replicas[1].gateway.base_url}/v1/chat/completions/{completion_id}/stream"
    rest = httpx.get(url, headers={"authorization": f"Bearer {secret}", "last-event-id": "1"}, timeout=60).content
    never.set()
    events = [part for part in rest.split(b"\n\n") if part]
    assert events[-1].endswith(b"data: [DONE]") and b'"error"' in events[-2]
    ids = [int(event.split(b"\n", 1)[0][4:]) for event in events]
    assert ids == list(range(2, 2 + len(ids)))
