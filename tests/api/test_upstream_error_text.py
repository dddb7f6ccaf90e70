"""What of an upstream's error text reaches the client: for a 5xx (whole or mid-stream) the
gateway's own words, with the model, the status and the request id, and the upstream's text in
the log; for a 4xx the upstream's message, secrets redacted and its length capped. Every door,
every provider."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from sluicegate.providers.error_text import redact
from tests.support.anthropic_upstream import AnthropicUpstream
from tests.support.anthropic_upstream import event as anthropic_event
from tests.support.gemini_upstream import GeminiUpstream, error_body, text_event
from tests.support.gemini_upstream import frame as gemini_frame
from tests.support.inprocess import InProcess, in_process, settings_for
from tests.support.openai_upstream import OpenAIUpstream, chunk, sse
from tests.support.wire_server import Reply

SECRETS = [
    "SECRET123",
    "sk-proj-abcdefghijkl",
    "org-AbCdEf1234567890",
    "AIzaSyA1234567890abcdefghijklmnop",
    "tok987",
]
LEAKY = (
    "upstream failed calling http://10.0.0.7:8443/internal?api_key=SECRET123 with Authorization: Bearer tok987"
    " for sk-proj-abcdefghijkl in org-AbCdEf1234567890 (AIzaSyA1234567890abcdefghijklmnop)\n"
    'Traceback (most recent call last):\n  File "/srv/app.py", line 7, in handler'
)
DOORS = ["chat", "messages", "responses"]
PROVIDERS = ["openai", "anthropic", "gemini"]


@pytest.fixture
async def gw(
    tmp_path: Path,
    clean_upstream: OpenAIUpstream,
    anthropic_upstream: AnthropicUpstream,
    gemini_upstream: GeminiUpstream,
) -> AsyncIterator[InProcess]:
    anthropic_upstream.reset()
    gemini_upstream.reset()
    settings = settings_for(
        tmp_path,
        [
            {"name": "openai", "provider": "openai", "base_url": clean_upstream.base_url, "api_key": "k"},
            {
                "name": "anthropic",
                "provider": "anthropic",
                "base_url": anthropic_upstream.base_url,
                "api_key": "k",
            },
            {"name": "gemini", "provider": "gemini", "base_url": gemini_upstream.base_url, "api_key": "k"},
        ],
    )
    async with in_process(settings) as running:
        yield running


def upstream_of(provider: str, request: pytest.FixtureRequest) -> Any:
    name = {"openai": "clean_upstream", "anthropic": "anthropic_upstream", "gemini": "gemini_upstream"}[
        provider
    ]
    return request.getfixturevalue(name)


def error_reply(provider: str, status: int, message: str) -> Reply:
    if provider == "anthropic":
        kind = "api_error" if status >= 500 else "invalid_request_error"
        body = orjson.dumps({"type": "error", "error": {"type": kind, "message": message}})
    elif provider == "gemini":
        body = error_body(status, message, "INTERNAL" if status >= 500 else "INVALID_ARGUMENT")
    else:
        body = orjson.dumps({"error": {"message": message, "type": "server_error", "code": None}})
    return Reply(status=status, body=body)


async def ask(gw: InProcess, door: str, model: str, stream: bool = False) -> Any:
    messages = [{"role": "user", "content": "hi"}]
    if door == "messages":
        return await gw.client.post(
            "/v1/messages",
            json={"model": model, "max_tokens": 5, "messages": messages, "stream": stream},
            headers={"x-api-key": gw.api_key, "anthropic-version": "2023-06-01"},
        )
    if door == "responses":
        body = {"model": model, "input": "hi", "store": False, "stream": stream}
        return await gw.client.post("/v1/responses", json=body, headers=gw.auth())
    return await gw.client.post(
        "/v1/chat/completions",
        json={"model": model, "messages": messages, "stream": stream},
        headers=gw.auth(),
    )


def message_of(door: str, response: Any) -> str:
    body = response.json()
    return str(body["error"]["message"])


def leaks(text: str) -> list[str]:
    return [secret for secret in [*SECRETS, "Traceback", "10.0.0.7", "/srv/app.py"] if secret in text]


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("door", DOORS)
async def test_an_upstream_5xx_is_told_in_the_gateways_words(
    gw: InProcess, request: pytest.FixtureRequest, door: str, provider: str
) -> None:
    upstream_of(provider, request).enqueue(error_reply(provider, 500, LEAKY))
    response = await ask(gw, door, provider)
    assert response.status_code >= 500
    message = message_of(door, response)
    assert leaks(message) == [], message
    assert f"`{provider}`" in message and "500" in message
    assert response.headers["x-request-id"] in message


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_an_upstream_4xx_message_passes_without_its_secrets(
    gw: InProcess, request: pytest.FixtureRequest, provider: str
) -> None:
    helpful = "Invalid value for 'temperature': must be at most 2. " + LEAKY + " " + "x" * 2000
    upstream_of(provider, request).enqueue(error_reply(provider, 400, helpful))
    response = await ask(gw, "chat", provider)
    assert response.status_code == 400
    message = message_of("chat", response)
    assert "Invalid value for 'temperature': must be at most 2." in message
    assert [s for s in SECRETS if s in message] == [], message
    assert len(message) < 700


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_429_does_not_show_the_upstreams_organisation(
    gw: InProcess, request: pytest.FixtureRequest, provider: str
) -> None:
    text = "Rate limit reached for gpt-4o in organization org-AbCdEf1234567890 on tokens per min."
    reply = error_reply(provider, 429, text)
    reply.headers["retry-after"] = "30"
    upstream_of(provider, request).enqueue(reply)
    response = await ask(gw, "chat", provider)
    assert response.status_code == 429
    assert "org-AbCdEf1234567890" not in response.text


def mid_stream_failure(provider: str) -> Reply:
    if provider == "anthropic":
        start = {
            "type": "message_start",
            "message": {"id": "msg_1", "type": "message", "role": "assistant", "model": "m", "content": [],
                        "stop_reason": None, "usage": {"input_tokens": 1, "output_tokens": 0}},
        }  # fmt: skip
        return Reply(
            chunks=[
                anthropic_event(start),
                anthropic_event(
                    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
                ),
                anthropic_event(
                    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}}
                ),
                anthropic_event({"type": "error", "error": {"type": "api_error", "message": LEAKY}}),
            ]
        )
    if provider == "gemini":
        return Reply(
            chunks=[
                gemini_frame(text_event("Hi")),
                gemini_frame({"error": {"code": 500, "message": LEAKY, "status": "INTERNAL"}}),
            ]
        )
    return Reply(
        chunks=[chunk(role="assistant", content=""), chunk("Hi"), sse({"error": {"message": LEAKY}})]
    )


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("door", DOORS)
async def test_a_mid_stream_failure_is_told_in_the_gateways_words(
    gw: InProcess, request: pytest.FixtureRequest, door: str, provider: str
) -> None:
    upstream_of(provider, request).enqueue(mid_stream_failure(provider))
    response = await ask(gw, door, provider, stream=True)
    assert response.status_code == 200
    assert "Hi" in response.text
    assert "error" in response.text
    assert leaks(response.text) == [], response.text
    assert response.headers["x-request-id"] in response.text


def test_redaction_keeps_the_words_and_drops_the_secrets() -> None:
    text = redact(
        "Invalid 'model': see https://x/y?key=abc123&alt=sse; Authorization: Bearer eyJhbGci.x.y, api_key: 'zzz',"
        " sk-ant-api03-abcdefgh, proj_abcdefghijklmnop"
    )
    assert text is not None
    assert "Invalid 'model': see https://x/y?key=[redacted]&alt=sse" in text
    for secret in ("abc123", "eyJhbGci", "zzz", "api03-abcdefgh", "abcdefghijklmnop"):
        assert secret not in text
    assert len(redact("y" * 10_000) or "") == 500
