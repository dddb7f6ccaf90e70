"""How many writes a streamed answer costs: each ASGI body message is one write to the client's
socket. The start of the answer goes with what arrived with the upstream's status, and the
last batch with the closing bytes; a slow answer still goes out as it comes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from sluicegate.http.sse import DONE
from tests.support.inprocess import InProcess, in_process, settings_for
from tests.support.raw_upstream import ANSWER, RawUpstream

SPLIT = ANSWER.index(b"data:", 10)  # the role chunk arrives with the status, the rest later


@pytest.fixture
async def upstream(request: pytest.FixtureRequest) -> AsyncIterator[RawUpstream]:
    with_status, rest = request.param
    async with RawUpstream(with_status, rest) as raw:
        yield raw


@pytest.fixture
async def gateway(upstream: RawUpstream, tmp_path: Path) -> AsyncIterator[InProcess]:
    model = {"name": "raw", "provider": "openai", "base_url": f"http://127.0.0.1:{upstream.port}/v1", "api_key": "k"}
    async with in_process(settings_for(tmp_path, [model])) as gw:
        yield gw


async def body_messages(gateway: InProcess, upstream: RawUpstream, **extra: Any) -> list[dict[str, Any]]:
    """The app called as a server calls it; the body messages it sends, in order."""
    body = orjson.dumps({"model": "raw", "stream": True, "messages": [{"role": "user", "content": "hi"}], **extra})
    scope = {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
        "method": "POST", "scheme": "http", "path": "/v1/chat/completions", "raw_path": b"/v1/chat/completions",
        "query_string": b"", "root_path": "", "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 80),
        "headers": [(b"authorization", b"Bearer " + gateway.api_key.encode()), (b"content-type", b"application/json")],
    }  # fmt: skip
    sent: list[dict[str, Any]] = []
    requested = False
    forever = asyncio.Event()

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": body, "more_body": False}
        await forever.wait()  # the client stays
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if message["type"] == "http.response.start" and upstream.rest:
            upstream.go.set()  # the rest of the answer comes after the client has its start

    await gateway.app(scope, receive, send)
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 200
    return sent[1:]


@pytest.mark.parametrize("upstream", [(ANSWER, b"")], indirect=True)
async def test_an_answer_that_came_whole_is_one_write(gateway: InProcess, upstream: RawUpstream) -> None:
    upstream.go.set()
    [only] = await body_messages(gateway, upstream, stream_options={"include_usage": True})
    assert only["more_body"] is False
    assert only["body"].endswith(DONE)
    chunks = [orjson.loads(line[6:]) for line in only["body"].split(b"\n\n") if line and line != DONE.strip()]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"]) == "Xin chào"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["usage"]["completion_tokens"] == 2


@pytest.mark.parametrize("upstream", [(ANSWER[:SPLIT], ANSWER[SPLIT:])], indirect=True)
async def test_the_start_goes_at_once_and_the_end_with_the_closing(
    gateway: InProcess, upstream: RawUpstream
) -> None:
    messages = await body_messages(gateway, upstream)
    assert [m["more_body"] for m in messages] == [True, False]
    opening, rest = (m["body"] for m in messages)
    assert b'"role":"assistant"' in opening and b"Xin" not in opening
    assert b"Xin" in rest and b'"finish_reason":"stop"' in rest and rest.endswith(DONE)


def _fingerprinted(choice: dict[str, Any]) -> bytes:
    meta = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m", "system_fingerprint": "fp_up7"}
    return b"data: " + orjson.dumps({**meta, "choices": [choice]}) + b"\n\n"


LOGPROB = {"token": "Hi", "logprob": -0.1, "bytes": [72, 105], "top_logprobs": []}
FINGERPRINTED = b"".join(
    [
        _fingerprinted({"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None}),
        _fingerprinted(
            {"index": 0, "delta": {"content": "Hi"}, "logprobs": {"content": [LOGPROB], "refusal": None}, "finish_reason": None}
        ),
        _fingerprinted({"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}),
    ]
) + DONE


@pytest.mark.parametrize("upstream", [(b"", FINGERPRINTED), (FINGERPRINTED, b"")], indirect=True)
async def test_every_chunk_keeps_the_upstreams_fingerprint(gateway: InProcess, upstream: RawUpstream) -> None:
    """Also the first (the role chunk), when nothing but the status had arrived at the commit
    and the answer then came whole in one read."""
    if not upstream.rest:
        upstream.go.set()
    messages = await body_messages(gateway, upstream, logprobs=True)
    body = b"".join(m["body"] for m in messages)
    chunks = [orjson.loads(line[6:]) for line in body.split(b"\n\n") if line.startswith(b"data: {")]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert [chunk.get("system_fingerprint") for chunk in chunks] == ["fp_up7"] * len(chunks)
    assert chunks[1]["choices"][0]["logprobs"]["content"][0]["token"] == "Hi"
