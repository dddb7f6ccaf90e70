"""A live gateway in front of the local Gemini upstream, and the `openai` SDK pointed at it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from openai import OpenAI

from tests.support.gemini_upstream import GeminiUpstream
from tests.support.server import Gateway, start_gateway

GEMINI_MODEL = "gemini-test"  # a Gemini 3 entry
GEMINI_25 = "gemini-legacy"  # a Gemini 2.5 entry
UPSTREAM_KEY = "gemini-upstream-key"


@pytest.fixture
def gemini(gemini_upstream: GeminiUpstream) -> GeminiUpstream:
    gemini_upstream.reset()
    return gemini_upstream


@pytest.fixture(scope="session")
def gemini_gateway(
    tmp_path_factory: pytest.TempPathFactory, gemini_upstream: GeminiUpstream
) -> Iterator[Gateway]:
    common = {"provider": "gemini", "base_url": gemini_upstream.base_url, "api_key": UPSTREAM_KEY}
    config = {
        "models": [
            {"name": GEMINI_MODEL, "upstream_model": "gemini-3-pro-preview", **common},
            {"name": GEMINI_25, "upstream_model": "gemini-2.5-flash", **common},
            {"name": "gemini/*", **common},
        ]
    }
    server = start_gateway(tmp_path_factory.mktemp("gemini-gateway"), config)
    server.model = GEMINI_MODEL
    yield server
    server.stop()


@pytest.fixture
def gclient(gemini_gateway: Gateway) -> OpenAI:
    return OpenAI(base_url=gemini_gateway.v1, api_key=gemini_gateway.api_key, max_retries=0, timeout=15)
