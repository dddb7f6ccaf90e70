"""A model name is one opaque identifier: a name that could walk an upstream's URL is a 400 in
the door's shape before routing, and every upstream path stays under its entry's base URL.

The upstream records each request target as it arrived on the wire."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from sluicegate.errors import InvalidRequestError
from sluicegate.providers.gemini.config import GeminiConfig
from sluicegate.providers.http import HTTPTransport, _within
from tests.support.inprocess import InProcess, in_process, settings_for
from tests.support.path_recorder import PathRecorder

WALKING = [
    "gemini/gemini-2.5-flash/../models/gemini-2.5-pro",
    "gemini/gemini-2.5-flash/../../../tenantB/x",
    "gemini/..",
    "gemini/./x",
    "gemini/gemini-2.5-flash%2F..%2F..%2FtenantB",
    "gemini/%2e%2e/x",
    "gemini/%2E%2E",
    "gemini/%252e%252e/tenantB",
    "gemini/a\\..\\b",
    "gemini/x?key=other",
    "gemini/x#fragment",
    "gemini/x\x00y",
    "gemini/x\ny",
    "openai/../../tenantB/v1",
    "anthropic/..%2F..%2Fx",
]


@pytest.fixture
async def upstream() -> AsyncIterator[PathRecorder]:
    async with PathRecorder() as recorder:
        yield recorder


@pytest.fixture
async def gw(tmp_path: Path, upstream: PathRecorder) -> AsyncIterator[InProcess]:
    base = upstream.origin + "/tenantA"
    settings = settings_for(
        tmp_path,
        [
            {"name": "gemini/*", "provider": "gemini", "base_url": base, "api_key": "gemini-secret"},
            {"name": "openai/*", "provider": "openai", "base_url": base + "/v1", "api_key": "openai-secret"},
            {"name": "anthropic/*", "provider": "anthropic", "base_url": base, "api_key": "anthropic-secret"},
        ],
    )
    async with in_process(settings) as running:
        yield running


async def ask(gw: InProcess, door: str, model: str, key: str | None = None) -> Any:
    secret = key or gw.api_key
    messages = [{"role": "user", "content": "hi"}]
    if door == "messages":
        return await gw.client.post(
            "/v1/messages",
            json={"model": model, "max_tokens": 5, "messages": messages},
            headers={"x-api-key": secret, "anthropic-version": "2023-06-01"},
        )
    if door == "responses":
        body: dict[str, Any] = {"model": model, "input": "hi", "store": False}
        return await gw.client.post("/v1/responses", json=body, headers={"Authorization": f"Bearer {secret}"})
    return await gw.client.post(
        "/v1/chat/completions",
        json={"model": model, "messages": messages},
        headers={"Authorization": f"Bearer {secret}"},
    )


@pytest.mark.parametrize("door", ["chat", "messages", "responses"])
async def test_a_name_that_walks_a_path_is_refused_before_routing(
    gw: InProcess, upstream: PathRecorder, door: str
) -> None:
    for model in WALKING:
        response = await ask(gw, door, model)
        assert response.status_code == 400, (model, response.text)
        body = response.json()
        if door == "messages":
            assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
        else:
            assert body["error"]["param"] == "model" and body["error"]["code"] == "invalid_model_name"
    assert upstream.targets == []


async def test_each_provider_sends_the_name_as_one_segment_under_its_base_path(
    gw: InProcess, upstream: PathRecorder
) -> None:
    for model in ("gemini/gemini-2.5-flash", "gemini/tuned/one:two", "openai/gpt-4o", "anthropic/claude-x"):
        response = await ask(gw, "chat", model)
        assert response.status_code == 200, (model, response.text)
    assert upstream.targets == [
        "/tenantA/v1beta/models/gemini-2.5-flash:generateContent",
        "/tenantA/v1beta/models/tuned%2Fone%3Atwo:generateContent",
        "/tenantA/v1/chat/completions",
        "/tenantA/v1/messages",
    ]


async def test_a_key_held_to_one_model_cannot_walk_to_another(gw: InProcess, upstream: PathRecorder) -> None:
    _, secret = await gw.gateway.keys.create("held", models=["gemini/gemini-2.5-flash*"])
    assert (await ask(gw, "chat", "gemini/gemini-2.5-flash", secret)).status_code == 200
    for model in (
        "gemini/gemini-2.5-flash/../models/gemini-2.5-pro",
        "gemini/gemini-2.5-flash%2F..%2Fgemini-2.5-pro",
    ):
        assert (await ask(gw, "chat", model, secret)).status_code == 400
    assert upstream.targets == ["/tenantA/v1beta/models/gemini-2.5-flash:generateContent"]


@pytest.mark.parametrize(
    ("path", "inside"),
    [
        ("/tenantA/v1beta/models/x:generateContent", True),
        ("/tenantA", True),
        ("/tenantA/v1beta/../../tenantB/x", False),
        ("/tenantA/%2e%2e/tenantB", False),
        ("/tenantA/..\\tenantB", False),
        ("/tenantAB/x", False),
    ],
)
def test_the_transport_reads_a_path_as_a_lenient_server_would(path: str, inside: bool) -> None:
    assert _within(path, "/tenantA") is inside


async def test_the_transport_never_sends_a_request_outside_its_base_path(upstream: PathRecorder) -> None:
    config = GeminiConfig(name="g", provider="gemini", base_url=upstream.origin + "/tenantA", api_key="k")
    transport = HTTPTransport(config, lambda status, body, headers: InvalidRequestError("no"))
    await transport.start()
    try:
        with pytest.raises(InvalidRequestError):
            await transport.post(
                upstream.origin + "/tenantA/v1beta/models/../../../tenantB/x", b"{}", {}, stream=False
            )
    finally:
        await transport.close()
    assert upstream.targets == []
