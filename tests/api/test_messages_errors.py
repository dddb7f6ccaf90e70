"""Errors at the Anthropic door, before any provider is called: Anthropic's shape and statuses
for every gateway error, its key headers, unknown URLs under /v1/messages; in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from sluicegate import errors
from sluicegate.api.messages.errors import anthropic_status, render_anthropic_error
from sluicegate.app import create_app
from sluicegate.gateway import Gateway
from sluicegate.settings import Settings

ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
LIMIT = 4096
BODY = {"model": "upstream-model", "max_tokens": 8, "messages": [{"role": "user", "content": "Hi"}]}


@pytest.fixture
async def door(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    settings = Settings.model_validate(
        {
            "data_dir": str(tmp_path),
            "server": {"max_body_bytes": LIMIT},
            # never reached here: every request below fails before a provider is called,
            # or asks only for the count estimate, which needs no upstream
            "models": [{"name": "upstream-model", "provider": "openai", "base_url": "http://127.0.0.1:9/v1"}],
        }
    )
    gateway = Gateway.build(settings)
    await gateway.store.open()
    await gateway.keys.start()
    _, secret = await gateway.keys.create("tests")
    transport = httpx.ASGITransport(app=create_app(settings, gateway))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        yield client, secret
    await gateway.keys.close()
    await gateway.store.close()


def anthropic_error(response: httpx.Response, status: int) -> str:
    """The error's message, after checking Anthropic's exact shape and the status."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"type", "error"} and body["type"] == "error"
    assert set(body["error"]) == {"type", "message"}
    assert body["error"]["type"] == ANTHROPIC_ERROR_TYPES[status]
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return str(body["error"]["message"])


def all_subclasses(cls: type[errors.GatewayError]) -> list[type[errors.GatewayError]]:
    found = [cls]
    for sub in cls.__subclasses__():
        found += all_subclasses(sub)
    return found


@pytest.mark.parametrize("cls", all_subclasses(errors.GatewayError), ids=lambda cls: cls.__name__)
def test_every_gateway_error_has_an_anthropic_type_and_status(cls: type[errors.GatewayError]) -> None:
    status, kind = anthropic_status(cls("boom"))
    assert ANTHROPIC_ERROR_TYPES[status] == kind
    expected = {
        "GatewayError": 500,
        "InvalidRequestError": 400,
        "PayloadTooLargeError": 413,
        "AuthenticationError": 401,
        "PermissionDeniedError": 403,
        "NotFoundError": 404,
        "ModelNotFoundError": 404,
        "RateLimitError": 429,
        "ServiceUnavailableError": 529,
        "UpstreamError": 500,
        "UpstreamTimeoutError": 504,
    }
    if cls.__name__ in expected:  # a subclass added later must at least map to a known type
        assert status == expected[cls.__name__]


def test_rendering_keeps_retry_after_and_the_upstreams_client_statuses() -> None:
    response = render_anthropic_error(errors.RateLimitError("slow down", retry_after=3))
    assert response.status_code == 429 and response.headers["retry-after"] == "3"
    assert orjson.loads(response.body) == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "slow down"},
    }
    assert anthropic_status(errors.InvalidRequestError("too big", status=413)) == (413, "request_too_large")
    assert anthropic_status(errors.InvalidRequestError("bad", status=422)) == (422, "invalid_request_error")
    assert anthropic_status(errors.UpstreamError("overloaded upstream", status=529)) == (
        529,
        "overloaded_error",
    )


async def test_no_key_is_401_naming_anthropics_header(door: tuple[httpx.AsyncClient, str]) -> None:
    client, _ = door
    message = anthropic_error(await client.post("/v1/messages", json=BODY), 401)
    assert message == "x-api-key header is required"
    anthropic_error(await client.post("/v1/messages", json=BODY, headers={"x-api-key": "  "}), 401)


async def test_a_wrong_key_is_401_in_either_header(door: tuple[httpx.AsyncClient, str]) -> None:
    client, _ = door
    anthropic_error(await client.post("/v1/messages", json=BODY, headers={"x-api-key": "sk-wrong"}), 401)
    anthropic_error(
        await client.post("/v1/messages", json=BODY, headers={"authorization": "Bearer sk-wrong"}), 401
    )
    anthropic_error(await client.post("/v1/messages", json=BODY, headers={"authorization": "Basic abc"}), 401)


async def test_the_right_key_passes_in_either_header(door: tuple[httpx.AsyncClient, str]) -> None:
    client, secret = door
    sent = {**BODY, "max_tokens": 0}  # fails after auth, so a 400 proves the key was taken
    for headers in ({"x-api-key": secret}, {"authorization": f"Bearer {secret}"}):
        response = await client.post(
            "/v1/messages", json=sent, headers={**headers, "anthropic-version": "2023-06-01"}
        )
        assert anthropic_error(response, 400) == "max_tokens: Input should be greater than or equal to 1"
        assert response.headers["request-id"] == response.headers["x-request-id"]


@pytest.mark.parametrize(
    ("content", "status", "expected"),
    [
        (b"{not json", 400, "The request body is not valid JSON"),
        (b"", 400, "The request body is not valid JSON"),
        (b"[1, 2]", 400, "The request body must be a JSON object."),
        (orjson.dumps({**BODY, "pad": "x" * LIMIT}), 413, "larger than the gateway's limit"),
    ],
)
async def test_bad_bodies(
    door: tuple[httpx.AsyncClient, str], content: bytes, status: int, expected: str
) -> None:
    client, secret = door
    for path in ("/v1/messages", "/v1/messages/count_tokens"):
        response = await client.post(path, content=content, headers={"x-api-key": secret})
        assert expected in anthropic_error(response, status)


async def test_an_unknown_model_is_404_not_found_error(door: tuple[httpx.AsyncClient, str]) -> None:
    client, secret = door
    response = await client.post(
        "/v1/messages", json={**BODY, "model": "upstream-modle"}, headers={"x-api-key": secret}
    )
    message = anthropic_error(response, 404)
    assert "upstream-modle" in message and "Did you mean `upstream-model`?" in message


async def test_unknown_urls_and_methods_under_messages_speak_anthropic(
    door: tuple[httpx.AsyncClient, str],
) -> None:
    client, secret = door
    auth = {"x-api-key": secret}
    assert "POST /v1/messages/batches" in anthropic_error(
        await client.post("/v1/messages/batches", json={}, headers=auth), 404
    )
    anthropic_error(await client.get("/v1/messages/count_tokens/x", headers=auth), 404)
    response = await client.get("/v1/messages", headers=auth)
    assert response.status_code == 405 and response.headers["allow"] == "POST"
    assert response.json()["type"] == "error" and response.json()["error"]["type"] == "invalid_request_error"
    # an Anthropic SDK whose base_url ends in /v1 is told how to fix it, in its own shape
    twice = anthropic_error(await client.post("/v1/v1/messages", json=BODY, headers=auth), 404)
    assert "use /v1/messages" in twice and "without /v1" in twice
    # elsewhere, OpenAI's shape as before
    other = await client.post("/v1/messagesx", json={}, headers=auth)
    assert other.status_code == 404 and set(other.json()["error"]) >= {"message", "type", "param", "code"}


async def test_count_tokens_without_an_exact_counter_is_a_labelled_estimate(
    door: tuple[httpx.AsyncClient, str],
) -> None:
    client, secret = door
    sent: dict[str, Any] = {"model": "upstream-model", "system": "Be brief.", "messages": BODY["messages"]}
    response = await client.post("/v1/messages/count_tokens", json=sent, headers={"x-api-key": secret})
    assert response.status_code == 200, response.text
    assert response.headers["x-sluicegate-token-count"] == "estimate"
    json_text = orjson.dumps({"system": "Be brief.", "messages": BODY["messages"], "tools": None})
    assert response.json() == {"input_tokens": (len(json_text) + 3) // 4}
