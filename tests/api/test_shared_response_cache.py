"""The response cache shared through the real Redis on 127.0.0.1:6379: what one gateway kept
answers the same request on another (a replica with an empty memory), whole or streamed; and
the entries' JSON form reads back into the same events."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
import redis

from sluicegate.core.events import (
    Finish,
    LastBatch,
    Metadata,
    ReasoningDelta,
    Started,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from sluicegate.core.shared_cache import decode_batches, encode_batches
from tests.support.openai_upstream import OpenAIUpstream
from tests.support.server import start_gateway

REDIS_URL = "redis://127.0.0.1:6379/0"
MODEL = "shared-cached"


@pytest.fixture
def prefix() -> Iterator[str]:
    client = redis.Redis.from_url(REDIS_URL)
    value = f"sg-cache-test-{secrets.token_hex(4)}:"
    yield value
    keys = list(client.scan_iter(match=value + "*"))
    if keys:
        client.delete(*keys)
    client.close()


def test_entries_read_back_into_the_same_events() -> None:
    batches = [
        [Started(upstream_model="m", attempts=0, prompt_tokens=7), TextDelta("héllo", 0)],
        [
            ToolCallDelta(
                0, '{"a":1}', "call_1", "f", 0, {"extra_content": {"google": {"thought_signature": "s"}}}
            )
        ],
        [ReasoningDelta("think", 0, signature="sig"), Metadata(system_fingerprint="fp", extra={"x": [1]})],
        LastBatch(
            [Finish("tool_calls", 0, native="STOP"), Usage(7, 3, details={"d": {"n": 1}}, reasoning_tokens=1)]
        ),
    ]
    again = decode_batches(encode_batches(batches))
    assert again == batches
    assert [type(batch) for batch in again] == [list, list, list, LastBatch]
    assert again[3][0].native == "STOP"  # type: ignore[union-attr]  # not compared by ==


def test_a_replica_answers_from_what_another_kept(
    tmp_path: Path, upstream: OpenAIUpstream, prefix: str
) -> None:
    config = {
        "redis": {"url": REDIS_URL, "prefix": prefix},
        "models": [
            {
                "name": MODEL,
                "provider": "openai",
                "base_url": upstream.base_url,
                "api_key": "x",
                "cache": {"ttl_s": 600},
            }
        ],
    }
    upstream.reset()
    first = start_gateway(tmp_path / "gw", config)
    try:
        client = openai.OpenAI(base_url=first.v1, api_key=first.api_key, max_retries=0, timeout=30)
        kept = client.chat.completions.with_raw_response.create(
            model=MODEL, messages=[{"role": "user", "content": "shared words here"}], temperature=0
        )
        assert kept.headers["x-sluicegate-cache"] == "miss"
    finally:
        first.stop()  # its memory goes with it: only Redis still has the answer
    assert list(redis.Redis.from_url(REDIS_URL).scan_iter(match=prefix + "cache:*"))
    second = start_gateway(tmp_path / "gw", config)  # the same keys, another process
    try:
        client = openai.OpenAI(base_url=second.v1, api_key=first.api_key, max_retries=0, timeout=30)
        hit = client.chat.completions.with_raw_response.create(
            model=MODEL, messages=[{"role": "user", "content": "shared words here"}], temperature=0
        )
        assert hit.headers["x-sluicegate-cache"] == "hit"
        assert hit.parse().choices[0].message.content == "shared words here"
        streamed = client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "shared words here"}],
            temperature=0,
            stream=True,
        )
        assert "".join(chunk.choices[0].delta.content or "" for chunk in streamed if chunk.choices) == (
            "shared words here"
        )
    finally:
        second.stop()
    assert len(upstream.requests) == 1  # the upstream answered once, for both replicas
