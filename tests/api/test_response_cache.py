"""The exact response cache against a real gateway in front of the mock OpenAI upstream: a
repeated deterministic request is answered without calling the upstream, whole or as a stream
(the recorded chunks replayed), in the client's own door, marked `x-sluicegate-cache`, written
to the ledger as a hit at no cost, and never shared between keys; and the cache's own bounds."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest

from sluicegate.core.cache import ResponseCache
from sluicegate.core.events import Finish, TextDelta
from tests.governance.support import GovGateway, start
from tests.support.openai_upstream import OpenAIUpstream

CACHED = "cached-model"
BILLED = "billed-hits"
PLAIN = "plain-model"
PRICE = {"input": 1_000_000.0, "output": 1_000_000.0}


@pytest.fixture(scope="module")
def gov(tmp_path_factory: pytest.TempPathFactory, upstream: OpenAIUpstream) -> Iterator[GovGateway]:
    entry = {"provider": "openai", "base_url": upstream.base_url, "api_key": "x", "price": PRICE}
    config = {
        "models": [
            {"name": CACHED, **entry, "cache": {"ttl_s": 600}},
            {"name": PLAIN, **entry},
            {"name": BILLED, **entry, "cache": {"bill_hits": True}},
        ]
    }
    server = start(tmp_path_factory.mktemp("cache"), config)
    yield server
    server.stop()


def sdk(gov: GovGateway) -> tuple[str, openai.OpenAI]:
    key_id, secret = gov.new_key()
    return key_id, openai.OpenAI(base_url=gov.v1, api_key=secret, max_retries=0, timeout=30)


def ask(text: str) -> Any:
    return [{"role": "user", "content": text}]


def test_a_repeated_request_is_answered_from_the_cache_and_billed_nothing(
    gov: GovGateway, upstream: OpenAIUpstream
) -> None:
    key_id, client = sdk(gov)
    upstream.reset()
    first = client.chat.completions.with_raw_response.create(model=CACHED, messages=ask("one two three"), temperature=0)
    second = client.chat.completions.with_raw_response.create(model=CACHED, messages=ask("one two three"), temperature=0)
    assert len(upstream.requests) == 1
    assert (first.headers["x-sluicegate-cache"], second.headers["x-sluicegate-cache"]) == ("miss", "hit")
    assert second.parse().choices[0].message.content == first.parse().choices[0].message.content == "one two three"
    rows = {row["request_id"]: row for row in gov.rows(key_id, 2)}
    miss, hit = rows[first.headers["x-request-id"]], rows[second.headers["x-request-id"]]
    assert miss["cost_usd"] > 0 and miss["usage_source"] == "upstream"
    assert (hit["usage_source"], hit["cost_usd"], hit["status"]) == ("cache", 0, 200)
    assert (hit["prompt_tokens"], hit["completion_tokens"]) == (miss["prompt_tokens"], miss["completion_tokens"])


def test_an_entry_may_bill_its_hits(gov: GovGateway, upstream: OpenAIUpstream) -> None:
    key_id, client = sdk(gov)
    for _ in range(2):
        client.chat.completions.create(model=BILLED, messages=ask("pay twice"), temperature=0)
    rows = gov.rows(key_id, 2)
    assert sorted(r["usage_source"] for r in rows) == ["cache", "upstream"]
    assert rows[0]["cost_usd"] == rows[1]["cost_usd"] > 0


def test_a_hit_is_a_stream_when_the_client_asks_for_one(gov: GovGateway, upstream: OpenAIUpstream) -> None:
    _, client = sdk(gov)
    upstream.reset()
    recorded = list(client.chat.completions.create(model=CACHED, messages=ask("a b c d"), seed=7, stream=True))
    with client.chat.completions.with_streaming_response.create(
        model=CACHED, messages=ask("a b c d"), seed=7, stream=True
    ) as response:
        assert response.headers["x-sluicegate-cache"] == "hit"
        replayed = list(response.parse())
    assert len(upstream.requests) == 1
    texts = [[c.choices[0].delta.content for c in chunks if c.choices] for chunks in (recorded, replayed)]
    assert texts[0] == texts[1]  # the same chunking
    assert "".join(t or "" for t in texts[1]) == "a b c d"
    whole = client.chat.completions.create(model=CACHED, messages=ask("a b c d"), seed=7)
    assert whole.choices[0].message.content == "a b c d" and len(upstream.requests) == 1


def test_no_answer_crosses_keys(gov: GovGateway, upstream: OpenAIUpstream) -> None:
    upstream.reset()
    for _ in range(2):
        _, client = sdk(gov)
        raw = client.chat.completions.with_raw_response.create(model=CACHED, messages=ask("mine"), temperature=0)
        assert raw.headers["x-sluicegate-cache"] == "miss"
    assert len(upstream.requests) == 2


def test_only_deterministic_requests_unless_asked(gov: GovGateway, upstream: OpenAIUpstream) -> None:
    _, client = sdk(gov)
    upstream.reset()
    for _ in range(2):
        raw = client.chat.completions.with_raw_response.create(model=CACHED, messages=ask("free"), temperature=0.7)
        assert "x-sluicegate-cache" not in raw.headers
    assert len(upstream.requests) == 2
    on = {"x-sluicegate-cache": "on"}
    for _ in range(2):
        client.chat.completions.create(model=PLAIN, messages=ask("asked"), extra_headers=on)
    assert len(upstream.requests) == 3  # a model without `cache:`, asked by the request
    off = client.chat.completions.with_raw_response.create(
        model=CACHED, messages=ask("one two three"), temperature=0, extra_headers={"x-sluicegate-cache": "off"}
    )
    assert "x-sluicegate-cache" not in off.headers and len(upstream.requests) == 4


def test_the_messages_door_replays_in_its_own_format(gov: GovGateway, upstream: OpenAIUpstream) -> None:
    _, secret = gov.new_key()
    client = anthropic.Anthropic(base_url=gov.gateway.base_url, api_key=secret, max_retries=0)
    upstream.reset()
    for _ in range(2):
        with client.messages.stream(
            model=CACHED, max_tokens=50, messages=[{"role": "user", "content": "x y z"}], extra_body={"temperature": 0}
        ) as stream:
            assert stream.get_final_text() == "x y z"
    assert len(upstream.requests) == 1


def test_the_cache_is_bounded_in_bytes_least_recently_used_first_out() -> None:
    cache = ResponseCache(max_bytes=300)
    batch = [[TextDelta("x" * 50), Finish("stop")]]
    for key in "abc":
        cache.put(key, batch, 60, 100)
    assert cache.get("a") is not None  # a is now the most recent
    cache.put("d", batch, 60, 100)
    assert cache.get("b") is None and cache.get("a") is not None and len(cache) == 3
    cache.put("huge", batch, 60, 301)  # larger than the whole cache: not kept
    assert cache.get("huge") is None and cache.size == 300


def test_an_entry_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    import sluicegate.core.cache as module

    now = [1000.0]
    monkeypatch.setattr(module.time, "monotonic", lambda: now[0])
    cache = ResponseCache(max_bytes=1000)
    cache.put("k", [[Finish("stop")]], 10, 10)
    assert cache.get("k") is not None
    now[0] += 11
    assert cache.get("k") is None and cache.size == 0
