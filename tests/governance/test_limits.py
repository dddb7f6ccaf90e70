"""The sliding-window limiter: its arithmetic, and the memory and Redis counters agreeing."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import pytest

from sluicegate.governance.limits import (
    WINDOW_S,
    Counts,
    Limiter,
    MemoryLimiter,
    RedisLimiter,
    allowed,
    decide,
    duration,
    wait_s,
)
from tests.governance.conftest import REDIS_URL, Backend


def test_the_previous_minute_decays_across_this_one() -> None:
    assert allowed(10, None, 0, Counts(req_cur=0, req_prev=10, tok_cur=0, tok_prev=0, frac=0.5))
    assert not allowed(10, None, 0, Counts(req_cur=5, req_prev=10, tok_cur=0, tok_prev=0, frac=0.5))
    assert not allowed(10, None, 0, Counts(req_cur=0, req_prev=10, tok_cur=0, tok_prev=0, frac=0.05))


def test_a_request_larger_than_the_token_limit_passes_an_empty_window_only() -> None:
    assert allowed(None, 100, 500, Counts(0, 0, 0, 0, 0.3))
    assert not allowed(None, 100, 500, Counts(0, 0, 1, 0, 0.3))


def test_wait_is_when_enough_has_decayed() -> None:
    # 10 last minute, 0 now, half-way: 5 in use; a limit of 5 needs 1 more to decay: at 60%.
    assert wait_s(5, 1, 0, 10, 0.5) == pytest.approx(0.1 * WINDOW_S)
    # This minute alone is full: wait for the next minute and part of it.
    assert wait_s(5, 1, 5, 0, 0.5) == pytest.approx(0.5 * WINDOW_S + 0.2 * WINDOW_S)
    assert wait_s(5, 1, 0, 0, 0.5) == 0


def test_headers_and_retry_after() -> None:
    ok = decide(60, 1000, 100, True, Counts(9, 0, 300, 0, 0.25))
    assert ok.headers == {
        "x-ratelimit-limit-requests": "60",
        "x-ratelimit-remaining-requests": "50",
        "x-ratelimit-reset-requests": "45s",
        "x-ratelimit-limit-tokens": "1000",
        "x-ratelimit-remaining-tokens": "600",
        "x-ratelimit-reset-tokens": "45s",
    }
    refused = decide(10, None, 0, False, Counts(10, 0, 0, 0, 0.5))
    assert refused.exceeded == "requests"
    assert refused.retry_after_s > 30
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert [duration(s) for s in (0.02, 1.5, 360)] == ["20ms", "1.5s", "6m0s"]


@pytest.fixture
async def limiter(backend: Backend) -> AsyncIterator[Limiter]:
    made: Limiter = MemoryLimiter() if backend.name == "sqlite" else RedisLimiter(REDIS_URL, backend.prefix)
    try:
        yield made
    finally:
        await made.close()


async def test_a_limiter_admits_exactly_the_limit(limiter: Limiter) -> None:
    key = "key_" + secrets.token_hex(4)
    decisions = [await limiter.acquire(key, 5, None, 0) for _ in range(8)]
    assert [d.ok for d in decisions] == [True] * 5 + [False] * 3
    assert [d.headers["x-ratelimit-remaining-requests"] for d in decisions[:5]] == ["4", "3", "2", "1", "0"]
    assert all(d.retry_after_s > 0 for d in decisions[5:])
    assert (await limiter.acquire("key_other", 5, None, 0)).ok  # keys count apart


async def test_token_corrections_count(limiter: Limiter) -> None:
    key = "key_" + secrets.token_hex(4)
    first = await limiter.acquire(key, None, 100, 10)
    assert first.ok and first.headers["x-ratelimit-remaining-tokens"] == "90"
    await limiter.add_tokens(key, 80)  # the answer was longer than the prompt estimate
    assert not (await limiter.acquire(key, None, 100, 20)).ok
    await limiter.add_tokens(key, -50)
    again = await limiter.acquire(key, None, 100, 20)
    assert again.ok and again.headers["x-ratelimit-remaining-tokens"] == "40"  # 10 + 80 - 50 + 20 used


async def test_a_batch_of_checks_is_counted_in_order(backend: Backend) -> None:
    """Redis takes a batch of checks in one round trip; each sees the ones before it."""
    if backend.name != "postgres":
        return  # the in-process limiter needs no batch (each check is a dict update)
    limiter = RedisLimiter(REDIS_URL, backend.prefix)
    try:
        key, other = "key_" + secrets.token_hex(4), "key_" + secrets.token_hex(4)
        asks = [(key, 3, None, 0)] * 5 + [(other, None, 100, 60), (other, None, 100, 60)]
        decisions = await limiter.acquire_many(asks)
        assert [d.ok for d in decisions] == [True, True, True, False, False, True, False]
        assert [d.headers["x-ratelimit-remaining-requests"] for d in decisions[:3]] == ["2", "1", "0"]
        assert decisions[3].exceeded == "requests" and decisions[6].exceeded == "tokens"
        assert decisions[5].headers["x-ratelimit-remaining-tokens"] == "40"
    finally:
        await limiter.close()
