"""A live gateway in front of the local Anthropic-format upstream, and clients for it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from openai import OpenAI

from tests.support.anthropic_upstream import AnthropicUpstream
from tests.support.server import Gateway, start_gateway

MODEL = "claude-test"  # an entry with its own upstream model
UPSTREAM_MODEL = "claude-sonnet-4-5"
CAPPED = "claude-capped"  # an entry with a default cap and extra headers
SECRET = "sk-ant-gateway-secret"


@pytest.fixture
def upstream(anthropic_upstream: AnthropicUpstream) -> AnthropicUpstream:
    anthropic_upstream.reset()
    return anthropic_upstream


@pytest.fixture(scope="session")
def anthropic_gateway(
    tmp_path_factory: pytest.TempPathFactory, anthropic_upstream: AnthropicUpstream
) -> Iterator[Gateway]:
    base = {"provider": "anthropic", "base_url": anthropic_upstream.base_url, "api_key": SECRET}
    config = {
        "models": [
            {"name": MODEL, "upstream_model": UPSTREAM_MODEL, **base},
            {
                "name": CAPPED,
                "default_max_tokens": 321,
                "anthropic_version": "2099-01-01",
                "headers": {"anthropic-beta": "test-beta-1"},
                **base,
            },
            {"name": "anthropic/*", **base},
        ]
    }
    server = start_gateway(tmp_path_factory.mktemp("anthropic-gateway"), config)
    yield server
    server.stop()


@pytest.fixture
def client(anthropic_gateway: Gateway) -> OpenAI:
    return OpenAI(base_url=anthropic_gateway.v1, api_key=anthropic_gateway.api_key, max_retries=0, timeout=15)
