"""What one request may ask of the gateway (README, "Limits"): nesting, message count, token
counts, model-name length, and that the work on a large body leaves the event loop free. A
failure of the gateway's own never counts against an upstream's health."""

from __future__ import annotations

import asyncio
import difflib
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

import sluicegate.api.chat_completions.route as chat_route
import sluicegate.providers.openai.provider as openai_provider
from sluicegate.api.limits import MAX_JSON_DEPTH, MAX_MESSAGES, OFF_LOOP_BYTES
from tests.support.inprocess import InProcess, in_process, settings_for
from tests.support.openai_upstream import OpenAIUpstream


def nested(depth: int) -> Any:
    value: Any = "deep"
    for _ in range(depth):
        value = [value]
    return value


@pytest.fixture
async def gw(tmp_path: Path, clean_upstream: OpenAIUpstream) -> AsyncIterator[InProcess]:
    deployment = {"provider": "openai", "base_url": clean_upstream.base_url, "api_key": "k"}
    settings = settings_for(
        tmp_path,
        [
            {
                "name": "up",
                "deployments": [deployment, dict(deployment)],
                "cooldown": {"failures": 1, "seconds": 60},
                "retries": {"count": 1, "backoff_base_s": 0.01},
                "price": {"input": 1.0, "output": 2.0},
            }
        ],
    )
    async with in_process(settings) as running:
        yield running


def chat(**fields: Any) -> dict[str, Any]:
    return {"model": "up", "messages": [{"role": "user", "content": "hi"}], **fields}


def failures(gw: InProcess) -> int:
    return sum(d.stats.failures for router in gw.gateway.models.routers() for d in router.deployments)


async def test_a_body_nested_too_deep_is_a_400_naming_the_field(
    gw: InProcess, clean_upstream: OpenAIUpstream
) -> None:
    for _ in range(3):
        body = chat(messages=[{"role": "user", "content": "hi", "extra": nested(300)}])
        response = await gw.client.post("/v1/chat/completions", json=body, headers=gw.auth())
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["code"] == "nesting_too_deep" and error["param"].startswith("messages.[0].extra")
    response = await gw.client.post(
        "/v1/messages",
        json={
            "model": "up",
            "max_tokens": 5,
            "messages": [{"role": "user", "content": nested(MAX_JSON_DEPTH)}],
        },
        headers={"x-api-key": gw.api_key},
    )
    assert response.status_code == 400 and response.json()["error"]["type"] == "invalid_request_error"
    assert "messages.0.content" in response.json()["error"]["message"]
    assert clean_upstream.requests == []
    assert failures(gw) == 0
    ok = await gw.client.post("/v1/chat/completions", json=chat(), headers=gw.auth())
    assert ok.status_code == 200 and ok.headers["x-sluicegate-attempts"] == "1"


async def test_nesting_within_the_limit_reaches_the_upstream(
    gw: InProcess, clean_upstream: OpenAIUpstream
) -> None:
    body = chat(messages=[{"role": "user", "content": "hi", "extra": nested(MAX_JSON_DEPTH - 4)}])
    response = await gw.client.post("/v1/chat/completions", json=body, headers=gw.auth())
    assert response.status_code == 200, response.text
    assert clean_upstream.requests[0]["messages"][0]["extra"] == body["messages"][0]["extra"]


async def test_a_request_the_gateway_cannot_encode_is_not_an_upstream_failure(
    gw: InProcess, clean_upstream: OpenAIUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: Any) -> Any:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(openai_provider, "openai_body", broken)
    for stream in (False, True):
        response = await gw.client.post("/v1/chat/completions", json=chat(stream=stream), headers=gw.auth())
        assert response.status_code == 500
        assert response.json()["error"]["code"] == "request_encoding_failed"
        assert response.headers["x-sluicegate-attempts"] == "1"  # neither retried nor failed over
    assert clean_upstream.requests == []
    assert failures(gw) == 0
    assert all(not d.breaker.open_until for router in gw.gateway.models.routers() for d in router.deployments)


async def test_too_many_messages_is_a_400_in_every_door(gw: InProcess) -> None:
    many = [{"role": "user", "content": "a"}] * (MAX_MESSAGES + 1)
    cases: list[tuple[str, dict[str, Any], dict[str, str]]] = [
        ("/v1/chat/completions", {"model": "up", "messages": many}, gw.auth()),
        ("/v1/messages", {"model": "up", "max_tokens": 5, "messages": many}, {"x-api-key": gw.api_key}),
        ("/v1/responses", {"model": "up", "input": many}, gw.auth()),
    ]
    for path, body, headers in cases:
        response = await gw.client.post(path, json=body, headers=headers)
        assert response.status_code == 400, (path, response.text)
        assert "at most 10000" in response.json()["error"]["message"]


async def test_a_huge_token_count_on_a_key_with_a_budget_is_a_400(gw: InProcess) -> None:
    _, secret = await gw.gateway.keys.create("budget", budget_nanos=10**9)
    huge = 2**63
    cases: list[tuple[str, dict[str, Any], dict[str, str]]] = [
        ("/v1/chat/completions", chat(max_tokens=huge), {"Authorization": f"Bearer {secret}"}),
        ("/v1/chat/completions", chat(max_completion_tokens=huge), {"Authorization": f"Bearer {secret}"}),
        (
            "/v1/messages",
            {"model": "up", "max_tokens": huge, "messages": [{"role": "user", "content": "hi"}]},
            {"x-api-key": secret},
        ),
        (
            "/v1/responses",
            {"model": "up", "input": "hi", "max_output_tokens": huge},
            {"Authorization": f"Bearer {secret}"},
        ),
    ]
    for path, body, headers in cases:
        response = await gw.client.post(path, json=body, headers=headers)
        assert response.status_code == 400, (path, response.text)


async def test_a_model_name_longer_than_any_configured_is_unknown_without_a_search(
    gw: InProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    searched: list[int] = []
    real = difflib.get_close_matches

    def spy(word: str, *args: Any, **kwargs: Any) -> list[str]:
        searched.append(len(word))
        return real(word, *args, **kwargs)

    monkeypatch.setattr(difflib, "get_close_matches", spy)
    name = "up" + "x" * (3 * 1024 * 1024)
    response = await gw.client.post("/v1/chat/completions", json=chat(model=name), headers=gw.auth())
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "model_not_found" and "did_you_mean" not in error
    assert len(error["message"]) < 300
    assert searched == []
    near = await gw.client.post("/v1/chat/completions", json=chat(model="upp"), headers=gw.auth())
    assert near.json()["error"].get("did_you_mean") == "up", near.json()  # a short name still gets the hint


async def test_health_is_answered_while_a_large_body_is_being_parsed(
    gw: InProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The large body's parse waits until /health has been answered; on the event loop it
    could not (it would block the loop /health needs), on a worker thread it can."""
    health_answered, parse_began = threading.Event(), threading.Event()
    seen: dict[str, Any] = {}
    real: Callable[[Any], Any] = chat_route.parse_chat_request

    def parse(body: Any) -> Any:
        seen["thread"] = threading.current_thread()
        parse_began.set()
        seen["health_during_parse"] = health_answered.wait(timeout=10)
        return real(body)

    monkeypatch.setattr(chat_route, "parse_chat_request", parse)
    big = chat(messages=[{"role": "user", "content": "x" * OFF_LOOP_BYTES}])
    request = asyncio.ensure_future(gw.client.post("/v1/chat/completions", json=big, headers=gw.auth()))
    assert await asyncio.to_thread(parse_began.wait, 30)
    health = await gw.client.get("/health")
    health_answered.set()
    assert health.status_code == 200
    assert not request.done()  # answered while the big request was still in flight
    assert (await request).status_code == 200
    assert seen["health_during_parse"] is True
    assert seen["thread"] is not threading.main_thread()
