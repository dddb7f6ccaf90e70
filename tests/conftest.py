"""Shared fixtures: a live gateway process on a random port, with the embedded model and a
mock OpenAI-compatible upstream behind it; the local Anthropic and Gemini upstreams."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.anthropic_upstream import AnthropicUpstream
from tests.support.gemini_upstream import GeminiUpstream
from tests.support.openai_upstream import OpenAIUpstream
from tests.support.server import LOCAL_MODEL, Gateway, start_gateway

SHARED_FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"
UPSTREAM_MODEL = "upstream-gpt"


@pytest.fixture(scope="session")
def upstream() -> Iterator[OpenAIUpstream]:
    server = OpenAIUpstream().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def anthropic_upstream() -> Iterator[AnthropicUpstream]:
    server = AnthropicUpstream().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def gemini_upstream() -> Iterator[GeminiUpstream]:
    server = GeminiUpstream().start()
    yield server
    server.stop()


@pytest.fixture
def clean_upstream(upstream: OpenAIUpstream) -> OpenAIUpstream:
    upstream.reset()
    return upstream


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory, upstream: OpenAIUpstream) -> Iterator[Gateway]:
    config = {
        "server": {"max_body_bytes": 256 * 1024},
        "models": [
            {"name": LOCAL_MODEL, "provider": "local", "queue_size": 8, "aliases": ["gpt-4o"]},
            {
                "name": UPSTREAM_MODEL,
                "provider": "openai",
                "base_url": upstream.base_url,
                "api_key": "upstream-secret",
                "upstream_model": "gpt-4o-mini",
            },
        ],
    }
    server = start_gateway(tmp_path_factory.mktemp("gateway"), config)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def shared_fixtures() -> Path:
    if not SHARED_FIXTURES.is_dir():
        pytest.skip("../shared/fixtures is not present")
    return SHARED_FIXTURES
