"""Malformed requests get a 4xx in OpenAI's exact error shape, and the server shrugs them off."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import pytest

from tests.support.server import Gateway

ERROR_KEYS = {"message", "type", "code", "param"}
LIMIT = 256 * 1024
MESSAGES = [{"role": "user", "content": "Hi"}]
AUTH = object()  # placeholder for the gateway's real `Authorization` header


@dataclass
class Case:
    status: int
    param: str | None
    body: Any = None  # a dict/list/str is sent as JSON; bytes as they are
    code: str | object | None = ...  # ... = not checked
    headers: dict[str, Any] = field(default_factory=lambda: {"Authorization": AUTH})
    error_type: str = "invalid_request_error"


def chat(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "smollm2-135m-instruct", "messages": MESSAGES, "stream": True}
    body.update(fields)
    return {k: v for k, v in body.items() if v is not DROP}


DROP = object()


CASES: dict[str, Case] = {
    "not-json": Case(400, None, b"model=smollm2&stream=true", code="invalid_json"),
    "truncated-json": Case(
        400, None, b'{"model": "smollm2-135m-instruct", "messages": [', code="invalid_json"
    ),
    "empty-body": Case(400, None, b"", code="invalid_json"),
    "json-array": Case(400, None, [chat()]),
    "json-string": Case(400, None, "hello"),
    "json-null": Case(400, None, None),
    "bad-utf8": Case(
        400,
        None,
        b'{"model": "smollm2-135m-instruct", "messages": [{"role": "user", "content": "\xff\xfe caf\xe9"}]}',
        code="invalid_json",
    ),
    "missing-model": Case(400, "model", chat(model=DROP), code="missing_required_parameter"),
    "model-not-string": Case(400, "model", chat(model=7)),
    "model-empty": Case(400, "model", chat(model="")),
    "missing-messages": Case(400, "messages", chat(messages=DROP), code="missing_required_parameter"),
    "messages-empty": Case(400, "messages", chat(messages=[])),
    "messages-not-list": Case(400, "messages", chat(messages="Hi")),
    "message-not-object": Case(400, "messages.[0]", chat(messages=["Hi"])),
    "message-without-role": Case(400, "messages.[0].role", chat(messages=[{"content": "Hi"}])),
    "bad-role": Case(400, "messages.[0].role", chat(messages=[{"role": "wizard", "content": "Hi"}])),
    "bad-role-second": Case(
        400, "messages.[1].role", chat(messages=[*MESSAGES, {"role": "robot", "content": "Hi"}])
    ),
    "content-number": Case(400, "messages.[0].content", chat(messages=[{"role": "user", "content": 42}])),
    "content-part-without-type": Case(
        400, "messages.[0].content.[0].type", chat(messages=[{"role": "user", "content": [{"text": "Hi"}]}])
    ),
    "stream-yes": Case(400, "stream", chat(stream="yes")),
    "stream-one": Case(400, "stream", chat(stream=1)),
    "temperature-3": Case(400, "temperature", chat(temperature=3)),
    "temperature-string": Case(400, "temperature", chat(temperature="0.5")),
    "top_p-negative": Case(400, "top_p", chat(top_p=-1)),
    "max_tokens-0": Case(400, "max_tokens", chat(max_tokens=0)),
    "max_tokens-string": Case(400, "max_tokens", chat(max_tokens="10")),
    "max_tokens-float": Case(400, "max_tokens", chat(max_tokens=1.5)),
    "max_completion_tokens-negative": Case(400, "max_completion_tokens", chat(max_completion_tokens=-5)),
    "n-0": Case(400, "n", chat(n=0)),
    "stop-5": Case(400, "stop", chat(stop=["a", "b", "c", "d", "e"])),
    "stop-number": Case(400, "stop", chat(stop=5)),
    "seed-string": Case(400, "seed", chat(seed="7")),
    # OpenAI's seed is a signed 64-bit integer, for every provider (bytes: orjson writes no wider ints)
    "seed-above-int64": Case(400, "seed", orjson.dumps(chat(seed=2**63))),
    "seed-below-int64": Case(400, "seed", orjson.dumps(chat()).replace(b'"stream"', b'"seed":-9223372036854775809,"stream"')),
    "seed-above-uint64-upstream": Case(
        400, "seed", orjson.dumps(chat(model="upstream-gpt")).replace(b'"stream"', b'"seed":18446744073709551616,"stream"')
    ),
    "stream_options-without-stream": Case(
        400, "stream_options", chat(stream=DROP, stream_options={"include_usage": True})
    ),
    "stream_options-with-stream-false": Case(
        400, "stream_options", chat(stream=False, stream_options={"include_usage": True})
    ),
    "stream_options-not-bool": Case(
        400, "stream_options.include_usage", chat(stream_options={"include_usage": "y"})
    ),
    "tool-name-not-string": Case(
        400, "tools.[0].function.name", chat(tools=[{"type": "function", "function": {"name": 3}}])
    ),
    "tools-not-list": Case(400, "tools", chat(tools={"type": "function"})),
    "response_format-unknown": Case(400, "response_format.type", chat(response_format={"type": "yaml"})),
    "no-authorization": Case(401, None, chat(), headers={}, code="invalid_api_key"),
    "empty-authorization": Case(401, None, chat(), headers={"Authorization": ""}, code="invalid_api_key"),
    "basic-authorization": Case(
        401, None, chat(), headers={"Authorization": "Basic dXNlcjpwYXNz"}, code="invalid_api_key"
    ),
    "bearer-without-key": Case(
        401, None, chat(), headers={"Authorization": "Bearer"}, code="invalid_api_key"
    ),
    "wrong-key": Case(
        401, None, chat(), headers={"Authorization": "Bearer sk-sg-wrong"}, code="invalid_api_key"
    ),
    "unknown-model": Case(404, "model", chat(model="gpt-17"), code="model_not_found"),
    "context-too-long": Case(
        400,
        "messages",
        chat(messages=[{"role": "user", "content": "hello world " * 4500}]),
        code="context_length_exceeded",
    ),
    "image-to-local-model": Case(
        400,
        "messages.[0].content.[1]",
        chat(
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is this?"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                    ],
                }
            ]
        ),
    ),
    "tool-choice-of-a-tool-not-given": Case(
        400,
        "tool_choice",
        chat(tools=[{"type": "function", "function": {"name": "f"}}], tool_choice={"type": "function", "function": {"name": "g"}}),
    ),
    "legacy-functions-to-local-model": Case(
        400, "functions", chat(functions=[{"name": "f", "parameters": {}}]), code="unsupported_parameter"
    ),
    "too-large-content-length": Case(
        413, None, chat(messages=[{"role": "user", "content": "x" * (LIMIT + 10)}]), code="request_too_large"
    ),
}


def encode(body: Any) -> bytes:
    return body if isinstance(body, bytes) else orjson.dumps(body)


def resolve_headers(case: Case, gateway: Gateway) -> dict[str, str]:
    headers = {"Content-Type": "application/json"}
    for name, value in case.headers.items():
        headers[name] = f"Bearer {gateway.api_key}" if value is AUTH else value
    return headers


def assert_openai_error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    payload = response.json()
    assert set(payload) == {"error"}, payload
    error = payload["error"]
    assert set(error) >= ERROR_KEYS, error
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["type"], str) and error["type"]
    assert error["param"] is None or isinstance(error["param"], str)
    assert error["code"] is None or isinstance(error["code"], str)
    return error  # type: ignore[no-any-return]


@pytest.mark.parametrize("name", list(CASES))
def test_malformed_request_gets_an_openai_error(gateway: Gateway, name: str) -> None:
    case = CASES[name]
    response = httpx.post(
        gateway.v1 + "/chat/completions",
        content=encode(case.body),
        headers=resolve_headers(case, gateway),
        timeout=30,
    )
    error = assert_openai_error(response, case.status)
    assert error["param"] == case.param, error
    if case.code is not ...:
        assert error["code"] == case.code, error
    expected_type = "invalid_request_error" if case.status != 429 else "rate_limit_error"
    assert error["type"] == expected_type
    if case.param and error["code"] in ("invalid_value", "missing_required_parameter"):
        assert case.param.split(".")[0] in error["message"] or case.param in error["message"]


def test_non_streaming_errors_have_the_same_shape(gateway: Gateway) -> None:
    response = httpx.post(
        gateway.v1 + "/chat/completions",
        json=chat(stream=False, temperature=3),
        headers={"Authorization": f"Bearer {gateway.api_key}"},
    )
    assert assert_openai_error(response, 400)["param"] == "temperature"


def test_too_large_chunked_body_is_413(gateway: Gateway) -> None:
    def pieces() -> Iterator[bytes]:
        yield b'{"model": "smollm2-135m-instruct", "messages": [{"role": "user", "content": "'
        for _ in range(LIMIT // 8192 + 4):
            yield b"x" * 8192
        yield b'"}]}'

    response = httpx.post(
        gateway.v1 + "/chat/completions",
        content=pieces(),
        headers={"Authorization": f"Bearer {gateway.api_key}", "Content-Type": "application/json"},
        timeout=30,
    )
    assert "content-length" not in response.request.headers
    assert response.request.headers["transfer-encoding"] == "chunked"
    error = assert_openai_error(response, 413)
    assert error["code"] == "request_too_large"


def test_body_just_under_the_limit_is_read(gateway: Gateway) -> None:
    """The limit is the limit: a valid body a little under it is parsed (here: rejected for `n`)."""
    filler = "x" * (LIMIT - 1000)
    response = httpx.post(
        gateway.v1 + "/chat/completions",
        json=chat(n=0, metadata={"filler": filler}),
        headers={"Authorization": f"Bearer {gateway.api_key}"},
    )
    assert assert_openai_error(response, 400)["param"] == "n"


def test_server_still_serves_after_the_table(gateway: Gateway) -> None:
    """Runs after the parametrized table above (pytest keeps file order)."""
    assert gateway.process.poll() is None
    assert httpx.get(gateway.base_url + "/health").status_code == 200
    with httpx.stream(
        "POST",
        gateway.v1 + "/chat/completions",
        json=chat(max_tokens=4),
        headers={"Authorization": f"Bearer {gateway.api_key}"},
        timeout=30,
    ) as response:
        assert response.status_code == 200
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    assert len(lines) >= 3


def garbage(rng: random.Random, gateway: Gateway) -> tuple[bytes, dict[str, str]]:
    kind = rng.randrange(6)
    headers = {"Authorization": f"Bearer {gateway.api_key}", "Content-Type": "application/json"}
    if kind == 0:
        return rng.randbytes(rng.randrange(1, 4000)), headers
    if kind == 1:
        valid = orjson.dumps(chat(max_tokens=2))
        return valid[: rng.randrange(len(valid))], headers
    if kind == 2:
        return orjson.dumps(chat(messages=[{"role": rng.choice(["x", 1, None]), "content": "hi"}])), headers
    if kind == 3:
        return orjson.dumps(chat(temperature=rng.choice([-1, 9, "hot", [1]]))), headers
    if kind == 4:
        return b'{"model": ' * rng.randrange(1, 500), headers
    headers["Authorization"] = "Bearer " + rng.randbytes(8).hex()
    return orjson.dumps(chat()), headers


async def test_a_hundred_concurrent_garbage_requests_do_not_crash_it(gateway: Gateway) -> None:
    rng = random.Random(1234)
    tracebacks_before = gateway.log().count("Traceback")
    requests = [garbage(rng, gateway) for _ in range(100)]
    limits = httpx.Limits(max_connections=100)
    async with httpx.AsyncClient(base_url=gateway.v1, timeout=30, limits=limits) as client:
        responses = await asyncio.gather(
            *(
                client.post("/chat/completions", content=content, headers=headers)
                for content, headers in requests
            )
        )
        for response in responses:
            assert 400 <= response.status_code < 500, response.text
            assert set(response.json()["error"]) >= ERROR_KEYS
        health = await client.get(gateway.base_url + "/health")
    assert health.status_code == 200
    assert gateway.process.poll() is None
    assert gateway.log().count("Traceback") == tracebacks_before
