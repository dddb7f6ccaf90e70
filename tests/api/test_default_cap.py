"""A model entry's `default_max_tokens` caps requests that give no max_tokens of their own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from openai import OpenAI

from tests.support.openai_upstream import OpenAIUpstream
from tests.support.server import Gateway, start_gateway


@pytest.fixture(scope="module")
def capped(tmp_path_factory: pytest.TempPathFactory, upstream: OpenAIUpstream) -> Iterator[Gateway]:
    config = {
        "models": [
            {"name": "capped", "provider": "openai", "base_url": upstream.base_url, "default_max_tokens": 77},
            {"name": "uncapped", "provider": "openai", "base_url": upstream.base_url},
        ]
    }
    server = start_gateway(Path(tmp_path_factory.mktemp("capped")), config)
    yield server
    server.stop()


def test_default_cap_applies_only_when_the_request_gives_none(capped: Gateway, clean_upstream: OpenAIUpstream) -> None:
    client = OpenAI(base_url=capped.v1, api_key=capped.api_key, max_retries=0)
    messages = [{"role": "user", "content": "hi there"}]
    client.chat.completions.create(model="capped", messages=messages)  # type: ignore[arg-type]
    client.chat.completions.create(model="capped", messages=messages, max_tokens=5)  # type: ignore[arg-type]
    client.chat.completions.create(model="uncapped", messages=messages)  # type: ignore[arg-type]
    first, second, third = clean_upstream.requests
    assert first["max_tokens"] == 77
    assert second["max_tokens"] == 5 and "max_completion_tokens" not in second
    assert "max_tokens" not in third and "max_completion_tokens" not in third
