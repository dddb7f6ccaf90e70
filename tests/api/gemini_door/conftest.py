"""The Gemini door's live gateway (one per session, shared by its test modules) and its client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from google import genai
from google.genai import types

from tests.api.gemini_door.names import CLAUDE_MODEL, EMBEDDED, GEMINI_MODEL, OPENAI_MODEL, UPSTREAM_GEMINI
from tests.support.anthropic_upstream import AnthropicUpstream
from tests.support.gemini_upstream import GeminiUpstream
from tests.support.openai_upstream import OpenAIUpstream
from tests.support.server import LOCAL_MODEL, Gateway, start_gateway


@pytest.fixture(scope="session")
def door(
    tmp_path_factory: pytest.TempPathFactory,
    upstream: OpenAIUpstream,
    gemini_upstream: GeminiUpstream,
    anthropic_upstream: AnthropicUpstream,
) -> Iterator[Gateway]:
    config = {
        "models": [
            {"name": LOCAL_MODEL, "provider": "local", "queue_size": 4},
            {"name": EMBEDDED, "provider": "embedded"},
            {
                "name": OPENAI_MODEL,
                "provider": "openai",
                "base_url": upstream.base_url,
                "api_key": "upstream-secret",
                "upstream_model": "gpt-4o-mini",
            },
            {
                "name": GEMINI_MODEL,
                "provider": "gemini",
                "base_url": gemini_upstream.base_url,
                "api_key": "google-secret",
                "upstream_model": UPSTREAM_GEMINI,
            },
            {
                "name": CLAUDE_MODEL,
                "provider": "anthropic",
                "base_url": anthropic_upstream.base_url,
                "api_key": "sk-ant-upstream",
                "upstream_model": "claude-sonnet-4-5",
            },
        ]
    }
    server = start_gateway(tmp_path_factory.mktemp("gemini-door"), config)
    yield server
    server.stop()


@pytest.fixture
def client(door: Gateway) -> genai.Client:
    return genai.Client(
        api_key=door.api_key, http_options=types.HttpOptions(base_url=door.base_url, timeout=60_000)
    )


@pytest.fixture
def openai_upstream(upstream: OpenAIUpstream) -> OpenAIUpstream:
    upstream.reset()
    return upstream


@pytest.fixture
def gemini(gemini_upstream: GeminiUpstream) -> GeminiUpstream:
    gemini_upstream.reset()
    return gemini_upstream
