"""The bytes on the wire, read raw with httpx: SSE framing, chunk shapes, headers, CORS, errors."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from tests.support.openai_upstream import OpenAIUpstream, Reply, chunk
from tests.support.server import Gateway

UPSTREAM_MODEL = "upstream-gpt"
ERROR_KEYS = {"message", "type", "param", "code"}
CHUNK_KEYS = {"id", "object", "created", "model", "choices"}


def auth(gateway: Gateway, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {gateway.api_key}", **extra}


def stream_raw(gateway: Gateway, content: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    """POST raw bytes; the response with `.content` holding exactly the bytes received."""
    all_headers = auth(gateway, **{"Content-Type": "application/json", **(headers or {})})
    with httpx.stream(
        "POST", gateway.v1 + "/chat/completions", content=content, headers=all_headers, timeout=60
    ) as response:
        response.read()
    return response


def split_events(raw: bytes) -> list[bytes]:
    """Each event as the bytes between `data: ` and its blank line, checking the framing exactly."""
    assert b"\r" not in raw
    assert raw.endswith(b"\n\n"), raw[-80:]
    events = raw[:-2].split(b"\n\n")
    payloads = []
    for event in events:
        if event == b": keep-alive":  # sent while the stream waits (a busy machine, a queue)
            continue
        assert event.startswith(b"data: "), event[:80]
        assert b"\n" not in event, event  # one line per event: no other fields, no multi-line data
        payloads.append(event[len(b"data: ") :])
    return payloads


LONG_ANSWER = [{"role": "user", "content": "Write a long story about a lighthouse keeper."}]


def body(model: str, **fields: Any) -> bytes:
    return orjson.dumps({"model": model, "messages": [{"role": "user", "content": "Say hello."}], **fields})


def chunks_of(payloads: list[bytes]) -> list[dict[str, Any]]:
    assert payloads[-1] == b"[DONE]"
    assert b"[DONE]" not in payloads[:-1]
    return [orjson.loads(p) for p in payloads[:-1]]


def test_every_event_is_one_data_line_and_chunks_have_openai_shape(gateway: Gateway) -> None:
    # a prompt the model cannot answer in 8 tokens, so the answer ends at the limit
    response = stream_raw(gateway, body(gateway.model, stream=True, max_tokens=8, messages=LONG_ANSWER))
    assert response.status_code == 200
    chunks = chunks_of(split_events(response.content))
    assert len(chunks) >= 3  # role, content..., finish
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["id"].startswith("chatcmpl-")
    assert len({c["created"] for c in chunks}) == 1
    assert isinstance(chunks[0]["created"], int)
    fingerprint = chunks[0].get("system_fingerprint")
    assert isinstance(fingerprint, str) and fingerprint.startswith("fp_")  # the model file and engine
    for c in chunks:
        assert set(c) == CHUNK_KEYS | {"system_fingerprint"}, c  # no `usage` unless include_usage was asked
        assert c["system_fingerprint"] == fingerprint
        assert c["object"] == "chat.completion.chunk"
        assert c["model"] == gateway.model
        assert len(c["choices"]) == 1
        choice = c["choices"][0]
        assert choice["index"] == 0
        assert "finish_reason" in choice
    for c in chunks[:-1]:
        assert c["choices"][0]["finish_reason"] is None
        assert c["choices"][0]["delta"]  # every non-final delta says something
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert all(set(c["choices"][0]["delta"]) == {"content"} for c in chunks[1:-1])
    final = chunks[-1]["choices"][0]
    assert final["delta"] == {}
    assert final["finish_reason"] == "length"


def test_include_usage_adds_a_null_usage_to_each_chunk_and_a_closing_usage_chunk(gateway: Gateway) -> None:
    raw = stream_raw(
        gateway,
        body(
            gateway.model, stream=True, max_tokens=4, stream_options={"include_usage": True}, messages=LONG_ANSWER
        ),
    ).content
    chunks = chunks_of(split_events(raw))
    assert all(set(c) == {*CHUNK_KEYS, "usage", "system_fingerprint"} for c in chunks)
    assert all(c["usage"] is None for c in chunks[:-1])
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    last = chunks[-1]
    assert last["choices"] == []
    assert last["usage"]["completion_tokens"] == 4
    assert last["usage"]["total_tokens"] == last["usage"]["prompt_tokens"] + 4
    assert len({c["id"] for c in chunks}) == 1


def test_stream_headers(gateway: Gateway) -> None:
    response = stream_raw(gateway, body(gateway.model, stream=True, max_tokens=1))
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"
    assert "content-length" not in response.headers


@pytest.mark.parametrize(
    "template",
    [
        b'{"stream": true, "model": "%(model)s", "max_tokens": 6, "temperature": 0, "seed": 3,'
        b' "messages": [{"content": "Name a color.", "role": "user"}]}',
        b'{"messages": [{"role": "user", "content": "Name a color."}], "seed": 3, "temperature": 0,'
        b' "max_tokens": 6, "model": "%(model)s", "stream": true}',
        b'{"model":"%(model)s","temperature":0,"stream":true,"seed":3,'
        b'"messages":[{"role":"user","content":"Name a color."}],"max_tokens":6}',
    ],
    ids=["stream-first", "model-last", "compact"],
)
def test_json_body_is_field_order_independent(gateway: Gateway, template: bytes) -> None:
    reference = stream_raw(
        gateway,
        body(gateway.model, stream=True, max_tokens=6, temperature=0, seed=3).replace(
            b"Say hello.", b"Name a color."
        ),
    )
    response = stream_raw(gateway, template % {b"model": gateway.model.encode()})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")

    def text(raw: bytes) -> str:
        return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks_of(split_events(raw)))

    assert text(response.content) == text(reference.content)
    assert text(response.content)


def test_cors_preflight_is_allowed(gateway: Gateway) -> None:
    response = httpx.options(
        gateway.v1 + "/chat/completions",
        headers={
            "Origin": "http://example.test",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert response.status_code in (200, 204), response.text
    assert response.headers["access-control-allow-origin"] in ("*", "http://example.test")
    assert "POST" in response.headers["access-control-allow-methods"]
    allowed = response.headers["access-control-allow-headers"].lower()
    assert allowed == "*" or {"authorization", "content-type"} <= {h.strip() for h in allowed.split(",")}


def test_streamed_post_carries_cors_headers(gateway: Gateway) -> None:
    response = stream_raw(
        gateway, body(gateway.model, stream=True, max_tokens=2), headers={"Origin": "http://example.test"}
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] in ("*", "http://example.test")
    assert split_events(response.content)[-1] == b"[DONE]"


def test_error_before_first_byte_carries_cors_headers(gateway: Gateway) -> None:
    response = httpx.post(
        gateway.v1 + "/chat/completions",
        content=b"{}",
        headers={"Origin": "http://example.test", "Content-Type": "application/json"},
    )
    assert response.status_code == 401
    assert response.headers["access-control-allow-origin"] in ("*", "http://example.test")


def test_answers_without_origin_carry_vary_and_request_id(gateway: Gateway) -> None:
    # The doors' POSTs without an Origin header skip Starlette's middleware: what the CORS and
    # request-id layers add must still be there, streamed, refused before the first byte, and
    # at each door.
    streamed = stream_raw(
        gateway, body(gateway.model, stream=True, max_tokens=2), headers={"x-request-id": "abc-1"}
    )
    assert streamed.status_code == 200
    assert streamed.headers["vary"] == "Origin"
    assert streamed.headers["x-request-id"] == "abc-1"
    assert "access-control-allow-origin" not in streamed.headers
    for path in ("/chat/completions", "/messages", "/responses"):
        refused = httpx.post(gateway.v1 + path, content=b"{}", headers={"Content-Type": "application/json"})
        assert refused.status_code == 401, path
        assert refused.headers["vary"] == "Origin", path
        assert refused.headers["x-request-id"].startswith("req_"), path


def test_failure_after_first_byte_becomes_an_error_event_then_done(
    gateway: Gateway, clean_upstream: OpenAIUpstream
) -> None:
    clean_upstream.enqueue(
        Reply(chunks=[chunk(role="assistant", content=""), chunk("Hello"), chunk(" there")])
    )
    response = stream_raw(gateway, body(UPSTREAM_MODEL, stream=True))
    assert response.status_code == 200
    payloads = split_events(response.content)
    assert payloads[-1] == b"[DONE]"
    error = orjson.loads(payloads[-2])
    assert set(error) == {"error"}
    assert set(error["error"]) == ERROR_KEYS
    assert error["error"]["message"]
    assert isinstance(error["error"]["type"], str)
    chunks = [orjson.loads(p) for p in payloads[:-2]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert text == "Hello there"
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks)  # no fake finish


def test_upstream_stream_keeps_the_gateway_chunk_shape(
    gateway: Gateway, clean_upstream: OpenAIUpstream
) -> None:
    raw = stream_raw(gateway, body(UPSTREAM_MODEL, stream=True)).content
    chunks = chunks_of(split_events(raw))
    assert all(set(c) == CHUNK_KEYS for c in chunks)
    assert {c["model"] for c in chunks} == {UPSTREAM_MODEL}  # the client's name, not the upstream's
    assert len({c["id"] for c in chunks}) == 1
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == "Say hello."
    assert chunks[-1]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}


def test_health(gateway: Gateway) -> None:
    response = httpx.get(gateway.base_url + "/health")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["status"] == "ok"
    assert body["dependencies"]["database"]["service"] == "SQLite"
    assert body["dependencies"]["database"]["status"] == "ok"


def test_models_list_shape(gateway: Gateway) -> None:
    response = httpx.get(gateway.v1 + "/models", headers=auth(gateway))
    assert response.status_code == 200
    listing = response.json()
    assert set(listing) == {"object", "data"}
    assert listing["object"] == "list"
    assert [m["id"] for m in listing["data"]] == [gateway.model, UPSTREAM_MODEL, "gpt-4o"]
    for model in listing["data"]:
        # an alias says which model it points to, so nobody takes it for that model itself
        alias = {"alias_for"} if model["id"] == "gpt-4o" else set()
        assert set(model) == {"id", "object", "created", "owned_by", "mode"} | alias
        if alias:
            assert model["alias_for"] == gateway.model
        assert model["object"] == "model"
        assert isinstance(model["created"], int)
        assert isinstance(model["owned_by"], str) and model["owned_by"]


def test_model_retrieve_shape(gateway: Gateway) -> None:
    response = httpx.get(gateway.v1 + "/models/" + gateway.model, headers=auth(gateway))
    assert response.status_code == 200
    model = response.json()
    assert set(model) == {"id", "object", "created", "owned_by", "mode"}
    assert model["id"] == gateway.model
    assert model["object"] == "model"


def test_model_retrieve_unknown_is_model_not_found(gateway: Gateway) -> None:
    response = httpx.get(gateway.v1 + "/models/no-such-model", headers=auth(gateway))
    assert response.status_code == 404
    error = response.json()["error"]
    assert set(error) >= ERROR_KEYS
    assert error["code"] == "model_not_found"


def test_models_need_a_key(gateway: Gateway) -> None:
    response = httpx.get(gateway.v1 + "/models")
    assert response.status_code == 401
    assert set(response.json()["error"]) == ERROR_KEYS


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/v1/nothing-here"), ("POST", "/v1/edits"), ("GET", "/v2/models")]
)
def test_unknown_route_is_a_404_in_openai_shape(gateway: Gateway, method: str, path: str) -> None:
    response = httpx.request(method, gateway.base_url + path, headers=auth(gateway))
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/json")
    payload = response.json()
    assert set(payload) == {"error"}
    assert set(payload["error"]) == ERROR_KEYS
    assert path in payload["error"]["message"]
    assert payload["error"]["type"] == "invalid_request_error"
    assert payload["error"]["code"] is None  # as OpenAI answers an unknown URL


def test_wrong_method_is_an_error_in_openai_shape(gateway: Gateway) -> None:
    response = httpx.get(gateway.v1 + "/chat/completions", headers=auth(gateway))
    assert response.status_code == 405
    payload = response.json()
    assert set(payload["error"]) == ERROR_KEYS
