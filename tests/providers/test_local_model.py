"""The embedded model behind a live gateway: disconnects, overload, UTF-8 and JSON mode."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.governance.support import admin_key_of
from tests.support.server import LOCAL_MODEL, Gateway, start_gateway

LONG_STORY = [
    {
        "role": "user",
        "content": "Write a very long story, at least two thousand words, about a lighthouse keeper"
        " and the ships she saves. Describe every day of her life in detail.",
    }
]


def headers(gateway: Gateway) -> dict[str, str]:
    return {"Authorization": f"Bearer {gateway.api_key}"}


def content_chunks(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """The parsed chunks of an event stream that carry content, as they arrive."""
    for line in lines:
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        chunk = json.loads(line[len("data: ") :])
        if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
            yield chunk


def stream_chat(gateway: Gateway, **fields: Any) -> tuple[str, str | None]:
    """Streams a chat completion; the concatenated text and the finish reason."""
    body = {"model": gateway.model, "stream": True, **fields}
    pieces: list[str] = []
    finish: str | None = None
    with httpx.stream(
        "POST", gateway.v1 + "/chat/completions", json=body, headers=headers(gateway), timeout=60
    ) as response:
        assert response.status_code == 200, response.read()
        raw = response.read()
    text = raw.decode("utf-8")  # strict: the wire itself must be valid UTF-8
    for line in text.split("\n"):
        if line.startswith("data: {"):
            choice = json.loads(line[len("data: ") :])["choices"][0]
            pieces.append(choice["delta"].get("content") or "")
            finish = choice["finish_reason"] or finish
    return "".join(pieces), finish


def leaver_key(gateway: Gateway) -> tuple[str, dict[str, str]]:
    """A key of its own, so the ledger rows of one test's requests can be told apart."""
    made = httpx.post(
        gateway.base_url + "/admin/keys", json={}, headers=admin(gateway), timeout=30
    ).json()
    return made["id"], {"Authorization": f"Bearer {made['secret']}"}


def admin(gateway: Gateway) -> dict[str, str]:
    return {"Authorization": f"Bearer {admin_key_of(gateway)}"}


def ledger_rows(gateway: Gateway, key_id: str, count: int) -> list[dict[str, Any]]:
    """The key's request records once `count` are written (each is written when its job ended:
    a job that went on generating after its client left would be written ~1500 tokens later)."""
    deadline = time.monotonic() + 120  # only ends a test that would hang
    while True:
        rows: list[dict[str, Any]] = httpx.get(
            gateway.base_url + "/admin/requests", params={"key_id": key_id}, headers=admin(gateway), timeout=30
        ).json()["data"]
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


def test_client_disconnect_stops_the_model(gateway: Gateway) -> None:
    key_id, auth = leaver_key(gateway)
    body = {
        "model": gateway.model,
        "messages": LONG_STORY,
        "stream": True,
        "max_tokens": 1500,
        "temperature": 1,
        "seed": 1,
    }
    with httpx.stream("POST", gateway.v1 + "/chat/completions", json=body, headers=auth, timeout=60) as response:
        assert response.status_code == 200
        received = content_chunks(response.iter_lines())
        for _ in range(10):
            next(received)
    # The connection is closed here, with ~1490 tokens still to go: the ledger counts what the
    # model generated (with its own tokenizer), so a model that went on would show them.
    (row,) = ledger_rows(gateway, key_id, 1)
    assert row["client_gone"] is True and row["status"] == 499
    assert 10 <= row["completion_tokens"] < 750, row
    assert_serves_next(gateway)


def assert_serves_next(gateway: Gateway) -> None:
    """A short streamed answer arrives whole after the one that was left."""
    short = {
        "model": gateway.model,
        "messages": [{"role": "user", "content": "Hi"}],
        "stream": True,
        "max_tokens": 5,
    }
    with httpx.stream(
        "POST", gateway.v1 + "/chat/completions", json=short, headers=headers(gateway), timeout=120
    ) as response:
        assert response.status_code == 200
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"


def test_non_streaming_client_giving_up_stops_the_model(gateway: Gateway) -> None:
    key_id, auth = leaver_key(gateway)
    body = {"model": gateway.model, "messages": LONG_STORY, "max_tokens": 1500, "temperature": 1, "seed": 1}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(gateway.v1 + "/chat/completions", json=body, headers=auth, timeout=1)
    (row,) = ledger_rows(gateway, key_id, 1)
    assert row["client_gone"] is True
    assert row["completion_tokens"] < 750, row  # stopped when the client gave up, not at max_tokens
    assert_serves_next(gateway)


def test_client_leaving_while_queued_does_not_hold_the_worker(gateway: Gateway) -> None:
    key_id, auth = leaver_key(gateway)
    running = {"model": gateway.model, "messages": LONG_STORY, "stream": True, "max_tokens": 1500}
    queued = orjson.dumps({**running, "temperature": 1})
    with httpx.stream(
        "POST", gateway.v1 + "/chat/completions", json=running, headers=auth, timeout=60
    ) as response:
        next(content_chunks(response.iter_lines()))  # the worker is busy with this one
        # A raw client sends a request that has to wait in the queue, then hangs up before a byte.
        host, port = gateway.base_url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(
                b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + f"Authorization: {auth['Authorization']}\r\nContent-Length: {len(queued)}\r\n\r\n".encode()
                + queued
            )
            time.sleep(0.5)
    # The running one is closed too. Had the queued job run, it would have generated for its
    # ~1500 tokens; both records say the client left, and neither went far.
    rows = ledger_rows(gateway, key_id, 2)
    assert len(rows) == 2 and all(row["client_gone"] for row in rows), rows
    assert all(row["completion_tokens"] < 750 for row in rows), rows
    assert_serves_next(gateway)


def test_vietnamese_answer_is_whole_utf8(gateway: Gateway) -> None:
    """A character whose bytes are split across tokens comes out whole: the streamed text is
    exactly the UTF-8 of the bytes the model generated (each token's `bytes` in its logprobs).
    What that text holds is the model's: a small model may itself write a character's first
    bytes and then something else, which UTF-8 can only show as U+FFFD (as llama-server does)."""
    body = {
        "model": gateway.model, "stream": True, "max_tokens": 60, "seed": 5, "logprobs": True,
        "messages": [{"role": "user", "content": "Viết một câu chào bằng tiếng Việt"}],
    }
    with httpx.stream(
        "POST", gateway.v1 + "/chat/completions", json=body, headers=headers(gateway), timeout=60
    ) as response:
        assert response.status_code == 200, response.read()
        raw = response.read()
    pieces: list[str] = []
    generated: list[bytes] = []
    for line in raw.decode("utf-8").split("\n"):  # strict: the wire itself must be valid UTF-8
        if line.startswith("data: {"):
            choice = json.loads(line[len("data: ") :])["choices"][0]
            pieces.append(choice["delta"].get("content") or "")
            generated += [bytes(entry["bytes"]) for entry in (choice.get("logprobs") or {}).get("content") or []]
    text = "".join(pieces)
    assert text.strip()
    assert text == b"".join(generated).decode("utf-8", errors="replace")
    assert any(ord(character) > 127 for character in text), text  # multi-byte characters did occur
    split = [piece for piece in generated if not _whole_utf8(piece)]
    assert split, generated  # some character's bytes did span tokens


def _whole_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def test_json_object_response_format_gives_json(gateway: Gateway) -> None:
    text, finish = stream_chat(
        gateway,
        messages=[
            {
                "role": "user",
                "content": "Reply with a JSON object with two keys: name (a cat's name) and age (a number).",
            }
        ],
        max_tokens=64,
        temperature=0,
        response_format={"type": "json_object"},
    )
    assert text.lstrip().startswith("{"), text
    if finish == "length":
        pytest.skip("the JSON answer was cut by max_tokens; only its start could be checked")
    assert finish == "stop"
    assert isinstance(json.loads(text), dict)


def test_json_schema_response_format_follows_the_schema(gateway: Gateway) -> None:
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "integer"}},
        "required": ["answer"],
        "additionalProperties": False,
    }
    text, finish = stream_chat(
        gateway,
        messages=[{"role": "user", "content": "What is 2 + 2? Answer in JSON."}],
        max_tokens=32,
        temperature=0,
        response_format={"type": "json_schema", "json_schema": {"name": "sum", "schema": schema}},
    )
    assert finish == "stop", text
    parsed = json.loads(text)
    assert set(parsed) == {"answer"} and isinstance(parsed["answer"], int)


@pytest.fixture
def tiny_queue_gateway(tmp_path: Path) -> Iterator[Gateway]:
    server = start_gateway(
        tmp_path, {"models": [{"name": LOCAL_MODEL, "provider": "local", "parallel": 1, "queue_size": 1}]}
    )
    yield server
    server.stop()


async def test_overload_is_turned_away_with_429_and_retry_after(tiny_queue_gateway: Gateway) -> None:
    gateway = tiny_queue_gateway
    body = {"model": gateway.model, "messages": LONG_STORY, "stream": True, "max_tokens": 60, "seed": 1}

    async def one(client: httpx.AsyncClient) -> tuple[int, dict[str, str], bytes]:
        async with client.stream("POST", "/chat/completions", json=body) as response:
            return response.status_code, dict(response.headers), await response.aread()

    async with httpx.AsyncClient(base_url=gateway.v1, headers=headers(gateway), timeout=60) as client:
        results = await asyncio.gather(*(one(client) for _ in range(6)))
        statuses = sorted(status for status, _, _ in results)
        # One runs, one waits in the queue of 1, the rest are turned away at once.
        assert statuses.count(200) >= 2, statuses
        assert statuses.count(429) >= 1, statuses
        assert statuses.count(200) + statuses.count(429) == 6, statuses
        for status, response_headers, raw in results:
            if status == 200:
                assert raw.endswith(b"data: [DONE]\n\n")
                assert b'"finish_reason":"length"' in raw or b'"finish_reason":"stop"' in raw
                continue
            assert int(response_headers["retry-after"]) >= 1
            assert response_headers["content-type"].startswith("application/json")
            error = json.loads(raw)["error"]
            assert set(error) >= {"message", "type", "code", "param"}
            assert error["code"]
            assert error["type"] == "rate_limit_error"
        # Once the burst is over, the model takes work again.
        after = await client.post(
            "/chat/completions",
            json={"model": gateway.model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2},
        )
        assert after.status_code == 200, after.text
