"""Calls to a live gateway in front of the mock OpenAI upstream, and checks of what comes back."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.conftest import UPSTREAM_MODEL
from tests.support.openai_upstream import Reply, chunk, sse
from tests.support.server import Gateway

DONE = b"data: [DONE]\n\n"
MESSAGES = [{"role": "user", "content": "Hi"}]
TOOLS: Any = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


def usage_chunk(prompt: int, completion: int, **extra: Any) -> bytes:
    usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    return sse(
        {
            "id": "u",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "m",
            "choices": [],
            "usage": {**usage, **extra},
        }
    )


def raw_chunk(choices: list[dict[str, Any]], **extra: Any) -> bytes:
    return sse(
        {
            "id": "u",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "m",
            "choices": choices,
            **extra,
        }
    )


def tool_delta(index: int, arguments: str, id: str | None = None, name: str | None = None) -> dict[str, Any]:
    call: dict[str, Any] = {"index": index, "function": {"arguments": arguments}}
    if id is not None:
        call.update(id=id, type="function")
    if name is not None:
        call["function"]["name"] = name
    return call


def post(gateway: Gateway, body: dict[str, Any], timeout: float = 15) -> httpx.Response:
    full = {"model": UPSTREAM_MODEL, "messages": MESSAGES, **body}
    return httpx.post(
        gateway.v1 + "/chat/completions",
        json=full,
        headers={"Authorization": f"Bearer {gateway.api_key}"},
        timeout=timeout,
    )


def stream_events(gateway: Gateway, **body: Any) -> list[Any]:
    """POST a streaming request; return the decoded data payloads, `[DONE]` as the string."""
    response = post(gateway, {"stream": True, **body})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    raw = response.content
    assert raw.endswith(b"\n\n")
    events: list[Any] = []
    for block in raw[:-2].split(b"\n\n"):
        if block == b": keep-alive":  # sent while the stream waits (a busy machine, a queue)
            continue
        assert block.startswith(b"data: "), block
        assert b"\n" not in block and b"\r" not in block
        data = block[len(b"data: ") :]
        events.append("[DONE]" if data == b"[DONE]" else json.loads(data))
    assert events.count("[DONE]") == 1 and events[-1] == "[DONE]"
    return events[:-1]


def text_of(chunks: list[dict[str, Any]], index: int = 0) -> str:
    return "".join(
        c["delta"].get("content") or "" for chunk in chunks for c in chunk["choices"] if c["index"] == index
    )


def finishes(chunks: list[dict[str, Any]]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for item in chunks:
        for c in item["choices"]:
            if c["finish_reason"] is not None:
                out.setdefault(c["index"], []).append(c["finish_reason"])
    return out


def assert_openai_shaped(
    chunks: list[dict[str, Any]], *, include_usage: bool = False, model: str = UPSTREAM_MODEL
) -> None:
    assert chunks
    assert len({c["id"] for c in chunks}) == 1 and chunks[0]["id"].startswith("chatcmpl-")
    assert len({c["created"] for c in chunks}) == 1
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert all(c["model"] == model for c in chunks)
    with_choices = [c for c in chunks if c["choices"]]
    assert with_choices[0]["choices"][0]["delta"].get("role") == "assistant"
    for item in with_choices:
        for c in item["choices"]:
            assert set(c) >= {"index", "delta", "finish_reason"}
            if c["finish_reason"] is not None:
                assert c["delta"] == {}, "the finish chunk carries an empty delta"
    per_choice_last: dict[int, dict[str, Any]] = {}
    for item in with_choices:
        for c in item["choices"]:
            per_choice_last[c["index"]] = c
    assert all(c["finish_reason"] is not None for c in per_choice_last.values())
    assert all(len(reasons) == 1 for reasons in finishes(chunks).values())
    if include_usage:
        assert all("usage" in c for c in chunks)
        assert all(c["usage"] is None for c in chunks[:-1])
    else:
        assert all("usage" not in c for c in chunks)


def text_reply(*pieces: str, finish: str = "stop", usage: bool = True) -> Reply:
    chunks = [chunk(role="assistant", content="")]
    chunks += [chunk(piece) for piece in pieces]
    chunks.append(chunk(finish=finish))
    if usage:
        chunks.append(usage_chunk(9, len(pieces)))
    return Reply(chunks=[*chunks, DONE])


def error_body(message: str, param: str | None = None, code: str | None = None) -> bytes:
    error = {"message": message, "type": "invalid_request_error", "param": param, "code": code}
    return json.dumps({"error": error}).encode()


def assert_error_shape(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) >= {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    return dict(error)


def completion_body(choices: list[dict[str, Any]], usage: dict[str, Any] | None = None) -> bytes:
    body = {
        "id": "chatcmpl-up",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": choices,
        "usage": usage or {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
        "system_fingerprint": "fp_1",
    }
    return json.dumps(body).encode()
