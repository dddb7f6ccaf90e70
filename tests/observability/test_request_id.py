"""Every answer carries an `x-request-id`, whatever answered it; a client's own sane id is kept."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from sluicegate.http.request_id import new_request_id
from tests.support.inprocess import InProcess, in_process, settings_for
from tests.support.openai_upstream import OpenAIUpstream


@pytest.fixture
async def gw(tmp_path: Path, clean_upstream: OpenAIUpstream):  # type: ignore[no-untyped-def]
    settings = settings_for(
        tmp_path, [{"name": "up", "provider": "openai", "base_url": clean_upstream.base_url}]
    )
    async with in_process(settings) as running:
        yield running


def chat(stream: bool) -> dict[str, object]:
    return {"model": "up", "messages": [{"role": "user", "content": "hi"}], "stream": stream}


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/health", 200),
        ("GET", "/metrics", 200),
        ("GET", "/", 200),
        ("GET", "/v1/models", 401),
        ("GET", "/nowhere", 404),
        ("DELETE", "/v1/chat/completions", 405),
        ("POST", "/v1/chat/completions", 401),
    ],
)
async def test_every_answer_has_a_request_id(gw: InProcess, method: str, path: str, status: int) -> None:
    response = await gw.client.request(method, path)
    assert response.status_code == status
    assert response.headers["x-request-id"].startswith("req_")
    assert len(response.headers.get_list("x-request-id")) == 1


async def test_the_door_and_the_header_name_the_same_id(gw: InProcess) -> None:
    for stream in (True, False):
        response = await gw.client.post("/v1/chat/completions", json=chat(stream), headers=gw.auth())
        assert response.status_code == 200
        assert len(response.headers.get_list("x-request-id")) == 1
    models = await gw.client.get("/v1/models", headers=gw.auth())
    assert models.status_code == 200 and models.headers["x-request-id"].startswith("req_")


async def test_a_clients_own_id_is_kept_and_a_strange_one_replaced(gw: InProcess) -> None:
    mine = {"x-request-id": "trace-2024.abc:def/1"}
    for path in ("/health", "/v1/models"):
        assert (await gw.client.get(path, headers=mine)).headers["x-request-id"] == "trace-2024.abc:def/1"
    streamed = await gw.client.post("/v1/chat/completions", json=chat(True), headers=gw.auth(**mine))
    assert streamed.headers["x-request-id"] == "trace-2024.abc:def/1"
    strange = await gw.client.get(
        "/health", headers={"x-request-id": "has spaces and \u00e9".encode() + b"x" * 200}
    )
    assert strange.headers["x-request-id"].startswith("req_")


async def test_an_unexpected_error_still_carries_the_id(gw: InProcess) -> None:
    async def broken(request: object) -> None:
        raise RuntimeError("a bug")

    from starlette.routing import Route

    gw.app.router.routes.append(Route("/broken", broken))
    transport = httpx.ASGITransport(app=gw.app, raise_app_exceptions=False)  # as a server: answer, log
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        response = await client.get("/broken", headers={"x-request-id": "bug-1"})
    assert response.status_code == 500
    assert response.headers["x-request-id"] == "bug-1"
    assert response.json()["error"]["type"] == "server_error"


def test_new_ids_sort_by_time_and_differ_within_a_millisecond() -> None:
    """The ledger indexes request ids: ids that sort by time are appended to that index, where
    random ones wrote a random page of it per request."""
    first = new_request_id()
    same_moment = {new_request_id() for _ in range(1000)}
    time.sleep(0.002)
    later = new_request_id()
    assert first < later
    assert len(same_moment) == 1000
    assert all(len(i) == len(first) == 28 and i.startswith("req_") for i in [*same_moment, later])
