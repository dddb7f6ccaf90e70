"""Slices of a busy key's Redis limits: most checks in memory, the shared limit still exact."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import pytest

from sluicegate.governance.limit_slices import LimitSlices
from sluicegate.governance.limits import Decision, LimitAsk, RedisLimiter
from tests.governance.conftest import REDIS_URL, Backend


@pytest.fixture
async def redis_limiter(pg_backend: Backend) -> AsyncIterator[RedisLimiter]:
    limiter = RedisLimiter(REDIS_URL, pg_backend.prefix)
    try:
        yield limiter
    finally:
        await limiter.close()


class Counting:
    def __init__(self, limiter: RedisLimiter) -> None:
        self.limiter = limiter
        self.calls = 0

    async def per_request(self, ask: LimitAsk) -> Decision:
        self.calls += 1
        return await self.limiter.acquire(*ask)


async def test_a_busy_key_is_counted_a_slice_at_a_time(redis_limiter: RedisLimiter) -> None:
    counting = Counting(redis_limiter)
    slices = LimitSlices(redis_limiter, counting.per_request, slice_s=60, slice_requests=32)
    key = "key_" + secrets.token_hex(4)
    decisions = [await slices.acquire((key, 6400, 10**7, 10)) for _ in range(40)]
    assert all(d.ok for d in decisions)
    assert slices.taken == 2 and counting.calls == 0  # 32 + 8 of a second slice
    # Redis has counted both slices whole: 64 requests, 640 tokens
    probe = await redis_limiter.acquire(key, 6400, 10**7, 0)
    assert probe.headers["x-ratelimit-remaining-requests"] == str(6400 - 65)
    first, last = decisions[0].headers, decisions[-1].headers
    assert first["x-ratelimit-limit-requests"] == "6400" and first["x-ratelimit-remaining-requests"] == "6399"
    assert last["x-ratelimit-remaining-requests"] == "6360"  # 40 used by this process
    assert last["x-ratelimit-remaining-tokens"] == str(10**7 - 400)


async def test_the_next_slice_is_counted_ahead_and_what_is_left_joins_it(redis_limiter: RedisLimiter) -> None:
    counting = Counting(redis_limiter)
    slices = LimitSlices(redis_limiter, counting.per_request, slice_s=60, slice_requests=32)
    key = "key_" + secrets.token_hex(4)
    first = [await slices.acquire((key, 6400, None, 0)) for _ in range(25)]  # 7 of 32 left
    for _ in range(200):  # the next slice is being counted in the background
        if slices.taken == 2:
            break
        await asyncio.sleep(0.01)
    assert slices.taken == 2
    # the 7 left and the new 32 are one slice: 31 more need no Redis round trip
    more = [await slices.acquire((key, 6400, None, 0)) for _ in range(31)]
    assert all(d.ok for d in first + more) and slices.taken == 2 and counting.calls == 0
    assert more[-1].headers["x-ratelimit-remaining-requests"] == str(6400 - 56)  # 56 used here
    probe = await redis_limiter.acquire(key, 6400, None, 0)
    assert probe.headers["x-ratelimit-remaining-requests"] == str(6400 - 65)  # two slices, and the probe


async def test_a_small_limit_is_checked_request_by_request(redis_limiter: RedisLimiter) -> None:
    counting = Counting(redis_limiter)
    slices = LimitSlices(redis_limiter, counting.per_request, slice_s=60, slice_requests=32)
    key = "key_" + secrets.token_hex(4)
    decisions = [await slices.acquire((key, 100, None, 0)) for _ in range(102)]
    assert [d.ok for d in decisions] == [True] * 100 + [False] * 2
    assert slices.taken == 0 and counting.calls == 102


async def test_two_processes_slices_never_admit_more_than_the_limit(redis_limiter: RedisLimiter) -> None:
    key = "key_" + secrets.token_hex(4)
    processes = [
        LimitSlices(redis_limiter, Counting(redis_limiter).per_request, slice_s=60, slice_requests=32)
        for _ in range(2)
    ]

    async def process(slices: LimitSlices, count: int) -> list[Decision]:
        return [await slices.acquire((key, 6400, None, 0)) for _ in range(count)]

    both = await asyncio.gather(process(processes[0], 3500), process(processes[1], 3500))
    admitted = sum(d.ok for decisions in both for d in decisions)
    assert admitted <= 6400  # one shared limit
    assert admitted >= 6400 - 2 * 32  # what slices hold back unused is at most a slice per process
    assert all(p.taken > 50 for p in processes)


async def test_slices_off_checks_every_request_in_redis(redis_limiter: RedisLimiter) -> None:
    counting = Counting(redis_limiter)
    slices = LimitSlices(redis_limiter, counting.per_request, slice_s=0)
    key = "key_" + secrets.token_hex(4)
    for _ in range(5):
        assert (await slices.acquire((key, 6400, None, 0))).ok
    assert counting.calls == 5 and slices.taken == 0


async def test_a_slice_is_128_requests_at_most_and_a_64th_of_the_limit(redis_limiter: RedisLimiter) -> None:
    slices = LimitSlices(redis_limiter, Counting(redis_limiter).per_request, slice_s=60)
    large, small = "key_" + secrets.token_hex(4), "key_" + secrets.token_hex(4)
    assert (await slices.acquire((large, 10**6, None, 0))).ok and (
        await slices.acquire((small, 6400, None, 0))
    ).ok
    # what Redis counted for each key: one whole slice, before the probe
    probe_large = await redis_limiter.acquire(large, 10**6, None, 0)
    probe_small = await redis_limiter.acquire(small, 6400, None, 0)
    assert probe_large.headers["x-ratelimit-remaining-requests"] == str(10**6 - 129)
    assert probe_small.headers["x-ratelimit-remaining-requests"] == str(6400 - 101)
