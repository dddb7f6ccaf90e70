"""Fault upstreams for the routing tests, and routers built from config entries in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from sluicegate.core.events import Batch, Started, TextDelta
from sluicegate.core.request import ChatRequest
from sluicegate.routing.router import Router
from sluicegate.routing.shared import SharedCooldowns
from sluicegate.settings import Settings
from sluicegate.wiring.build import build_routers
from tests.support.server import free_port
from testsupport.fault_upstream import FaultUpstream


@pytest.fixture(scope="session")
def upstream_a() -> Iterator[FaultUpstream]:
    server = FaultUpstream().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def upstream_b() -> Iterator[FaultUpstream]:
    server = FaultUpstream().start()
    yield server
    server.stop()


@pytest.fixture
def a(upstream_a: FaultUpstream) -> Iterator[FaultUpstream]:
    upstream_a.reset()
    upstream_a.accept()
    yield upstream_a
    upstream_a.accept()


@pytest.fixture
def b(upstream_b: FaultUpstream) -> Iterator[FaultUpstream]:
    upstream_b.reset()
    upstream_b.accept()
    yield upstream_b
    upstream_b.accept()


@pytest.fixture(scope="session")
def closed_url() -> str:
    """An address where nothing listens: connections are refused."""
    return f"http://127.0.0.1:{free_port()}/v1"


def openai(url: str, **fields: Any) -> dict[str, Any]:
    return {"provider": "openai", "base_url": url, "api_key": "k", **fields}


@asynccontextmanager
async def routers(
    *models: dict[str, Any], shared: SharedCooldowns | None = None
) -> AsyncIterator[dict[str, Router]]:
    settings = Settings.model_validate({"models": list(models)})
    built = build_routers(settings.models, shared)
    for router in built.values():
        await router.start()
    try:
        yield built
    finally:
        for router in built.values():
            await router.close()


def chat(model: str = "m", fault: str | None = None, stream: bool = True) -> ChatRequest:
    raw: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    if fault is not None:
        raw["fault"] = fault
    return ChatRequest(model=model, messages=raw["messages"], raw=raw, stream=stream)


async def answer(router: Router, request: ChatRequest | None = None) -> tuple[Started, str]:
    """A whole stream: the Started that opened it and the text."""
    batches: list[Batch] = [batch async for batch in router.stream(request or chat(router.name))]
    started = batches[0][0]
    assert isinstance(started, Started)
    text = "".join(e.text for batch in batches for e in batch if isinstance(e, TextDelta))
    return started, text
