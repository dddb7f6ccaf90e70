"""Requests-per-minute and tokens-per-minute limits: a sliding window counter.

Each key has a counter per minute (one for requests, one for tokens). The usage seen at time t
is `previous minute * (1 - elapsed fraction of this minute) + this minute`, which follows a true
sliding minute closely without keeping a log of every request, and has no burst of twice the limit
at the minute boundary that fixed windows allow. A request is admitted when the usage plus its
cost stays within the limit (its tokens: the prompt estimate; the answer's tokens are added when
it settles), and then counted, in one atomic step: a Lua script in Redis (shared by every
process; Redis's own clock, so replicas need no clock agreement) or, without Redis, a dict in the
process (each process then enforces the limits on its own).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

WINDOW_S = 60.0
RATE_LIMIT_HEADERS = [
    f"x-ratelimit-{what}-{unit}"
    for unit in ("requests", "tokens")
    for what in ("limit", "remaining", "reset")
]


# One request's rate-limit check: key id, requests per minute, tokens per minute, token cost.
LimitAsk = tuple[str, int | None, int | None, int]


@dataclass(frozen=True, slots=True)
class Counts:
    """The counters before this request: requests and tokens of this and the previous minute."""

    req_cur: float
    req_prev: float
    tok_cur: float
    tok_prev: float
    frac: float  # elapsed fraction of this minute


def allowed(rpm: int | None, tpm: int | None, cost: int, c: Counts) -> bool:
    """The admission rule (the Lua script applies the same one)."""
    if rpm and c.req_prev * (1 - c.frac) + c.req_cur + 1 > rpm:
        return False
    used = c.tok_prev * (1 - c.frac) + c.tok_cur
    # a request larger than the whole limit still passes when the window is empty
    return not (tpm and used > 0 and used + cost > tpm)


def wait_s(limit: int, cost: int, cur: float, prev: float, frac: float) -> float:
    """Seconds until `cost` more fits under `limit`, if nothing else arrives meanwhile."""
    room = limit - cost - cur
    if room >= 0:
        if prev <= 0:
            return 0.0
        needed = 1 - room / prev  # the fraction of this minute at which prev has decayed enough
        return max(0.0, needed - frac) * WINDOW_S
    if cur <= 0:
        return (1 - frac) * WINDOW_S
    into_next = min(1.0, max(0.0, 1 - (limit - cost) / cur))
    return (1 - frac) * WINDOW_S + into_next * WINDOW_S


def duration(seconds: float) -> str:
    """OpenAI's reset format: `20ms`, `1.5s`, `6m0s`."""
    if seconds < 1:
        return f"{max(0, round(seconds * 1000))}ms"
    if seconds < 60:
        return f"{round(seconds, 3):g}s"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}m{round(rest):d}s"


@dataclass(frozen=True, slots=True)
class Decision:
    ok: bool
    headers: dict[str, str]
    retry_after_s: float = 0.0
    exceeded: str = ""  # "requests" or "tokens": the limit that refused


def decide(rpm: int | None, tpm: int | None, cost: int, ok: bool, c: Counts) -> Decision:
    """The headers and Retry-After for a decision the limiter made with these counts."""
    headers: dict[str, str] = {}
    reset = duration((1 - c.frac) * WINDOW_S)
    retry = 0.0
    exceeded = ""
    if rpm:
        used = c.req_prev * (1 - c.frac) + c.req_cur + (1 if ok else 0)
        headers["x-ratelimit-limit-requests"] = str(rpm)
        headers["x-ratelimit-remaining-requests"] = str(max(0, math.floor(rpm - used)))
        headers["x-ratelimit-reset-requests"] = reset
        if not ok and c.req_prev * (1 - c.frac) + c.req_cur + 1 > rpm:
            retry = max(retry, wait_s(rpm, 1, c.req_cur, c.req_prev, c.frac))
            exceeded = "requests"
    if tpm:
        used = c.tok_prev * (1 - c.frac) + c.tok_cur + (cost if ok else 0)
        headers["x-ratelimit-limit-tokens"] = str(tpm)
        headers["x-ratelimit-remaining-tokens"] = str(max(0, math.floor(tpm - used)))
        headers["x-ratelimit-reset-tokens"] = reset
        if not ok and not allowed(None, tpm, cost, c):
            retry = max(retry, wait_s(tpm, cost, c.tok_cur, c.tok_prev, c.frac))
            exceeded = exceeded or "tokens"
    return Decision(ok, headers, retry, exceeded)


class Limiter(Protocol):
    backend: str

    async def acquire(self, key_id: str, rpm: int | None, tpm: int | None, cost: int) -> Decision:
        """Check and count one request of `cost` tokens, atomically."""
        ...

    async def add_tokens(self, key_id: str, tokens: int) -> None:
        """Correct this minute's token count once the real usage is known (may be negative)."""
        ...

    async def close(self) -> None: ...


class MemoryLimiter:
    """Counters in this process only."""

    backend = "memory"

    def __init__(self) -> None:
        # key id -> [minute index, req_cur, req_prev, tok_cur, tok_prev]
        self._windows: dict[str, list[float]] = {}

    def _counts(self, key_id: str, now: float) -> tuple[list[float], float]:
        index = math.floor(now / WINDOW_S)
        window = self._windows.get(key_id)
        if window is None:
            window = self._windows[key_id] = [index, 0, 0, 0, 0]
        elif window[0] != index:
            adjacent = window[0] == index - 1
            window[:] = [index, 0, window[1] if adjacent else 0, 0, window[3] if adjacent else 0]
        return window, now / WINDOW_S - index

    async def acquire(self, key_id: str, rpm: int | None, tpm: int | None, cost: int) -> Decision:
        return self.acquire_now(key_id, rpm, tpm, cost)

    def acquire_now(self, key_id: str, rpm: int | None, tpm: int | None, cost: int) -> Decision:
        """`acquire` as a plain call: nothing here waits."""
        window, frac = self._counts(key_id, time.time())
        counts = Counts(window[1], window[2], window[3], window[4], frac)
        ok = allowed(rpm, tpm, cost, counts)
        if ok:
            window[1] += 1
            window[3] += cost
        return decide(rpm, tpm, cost, ok, counts)

    async def add_tokens(self, key_id: str, tokens: int) -> None:
        window, _ = self._counts(key_id, time.time())
        window[3] += tokens

    async def close(self) -> None:
        self._windows.clear()


_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local window = tonumber(ARGV[4])
local idx = math.floor(now / window)
local frac = now / window - idx
local base = KEYS[1]
local rcur, rprev = base .. ':r:' .. idx, base .. ':r:' .. (idx - 1)
local tcur, tprev = base .. ':t:' .. idx, base .. ':t:' .. (idx - 1)
local rc = tonumber(redis.call('GET', rcur) or '0')
local rp = tonumber(redis.call('GET', rprev) or '0')
local tc = tonumber(redis.call('GET', tcur) or '0')
local tp = tonumber(redis.call('GET', tprev) or '0')
local rpm, tpm, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local n = tonumber(ARGV[5] or '1')
local ok = 1
if rpm > 0 and rp * (1 - frac) + rc + n > rpm then ok = 0 end
local used = tp * (1 - frac) + tc
if tpm > 0 and used > 0 and used + cost > tpm then ok = 0 end
if ok == 1 then
  local ttl = math.floor(window * 2) + 1
  redis.call('INCRBY', rcur, n)
  redis.call('EXPIRE', rcur, ttl)
  if cost ~= 0 then
    redis.call('INCRBY', tcur, cost)
    redis.call('EXPIRE', tcur, ttl)
  end
end
return {ok, rc, rp, tc, tp, tostring(frac)}
"""

_ADD_TOKENS = """
local t = redis.call('TIME')
local window = tonumber(ARGV[2])
local idx = math.floor((tonumber(t[1]) + tonumber(t[2]) / 1000000) / window)
local key = KEYS[1] .. ':t:' .. idx
redis.call('INCRBY', key, ARGV[1])
redis.call('EXPIRE', key, math.floor(window * 2) + 1)
return 1
"""


class RedisLimiter:
    """Counters in Redis, shared by every process and host that uses the same Redis and prefix."""

    backend = "redis"

    def __init__(self, url: str, prefix: str = "sluicegate:", connections: int = 32) -> None:
        import redis.asyncio as aioredis

        # A bounded pool that makes a burst wait for a connection instead of failing (the
        # default pool refuses once it is full) and keeps Redis's connection count small.
        pool = aioredis.BlockingConnectionPool.from_url(url, max_connections=connections, timeout=10)
        self._client = aioredis.Redis(connection_pool=pool)
        self._prefix = prefix + "rl:"
        self._acquire = self._client.register_script(_ACQUIRE)
        self._add = self._client.register_script(_ADD_TOKENS)

    async def acquire(self, key_id: str, rpm: int | None, tpm: int | None, cost: int) -> Decision:
        result = await self._acquire(keys=[self._prefix + key_id], args=[rpm or 0, tpm or 0, cost, WINDOW_S])
        ok, rc, rp, tc, tp, frac = result
        counts = Counts(float(rc), float(rp), float(tc), float(tp), float(frac))
        return decide(rpm, tpm, cost, bool(ok), counts)

    async def acquire_slice(
        self, key_id: str, rpm: int | None, tpm: int | None, requests: int, tokens: int
    ) -> tuple[bool, Counts]:
        """Count `requests` requests and `tokens` tokens at once, if they all fit (a process's
        slice of the limits, governance/limit_slices.py); the counts before them."""
        result = await self._acquire(
            keys=[self._prefix + key_id], args=[rpm or 0, tpm or 0, tokens, WINDOW_S, requests]
        )
        ok, rc, rp, tc, tp, frac = result
        return bool(ok), Counts(float(rc), float(rp), float(tc), float(tp), float(frac))

    async def acquire_many(self, asks: Sequence[LimitAsk]) -> list[Decision]:
        """Several requests' checks in one round trip (a pipeline of the same script): each is
        atomic in Redis and sees the ones before it."""
        if len(asks) == 1:
            return [await self.acquire(*asks[0])]
        async with self._client.pipeline(transaction=False) as pipe:
            for key_id, rpm, tpm, cost in asks:
                await self._acquire(
                    keys=[self._prefix + key_id], args=[rpm or 0, tpm or 0, cost, WINDOW_S], client=pipe
                )
            results = await pipe.execute()
        decisions: list[Decision] = []
        for (_, rpm, tpm, cost), (ok, rc, rp, tc, tp, frac) in zip(asks, results, strict=True):
            counts = Counts(float(rc), float(rp), float(tc), float(tp), float(frac))
            decisions.append(decide(rpm, tpm, cost, bool(ok), counts))
        return decisions

    async def add_tokens(self, key_id: str, tokens: int) -> None:
        if tokens:
            await self._add(keys=[self._prefix + key_id], args=[tokens, WINDOW_S])

    async def add_many(self, tokens: dict[str, int]) -> None:
        """Several keys' corrections in one round trip."""
        async with self._client.pipeline(transaction=False) as pipe:
            for key_id, count in tokens.items():
                if count:
                    await self._add(keys=[self._prefix + key_id], args=[count, WINDOW_S], client=pipe)
            await pipe.execute()

    async def ping(self) -> None:
        await self._client.ping()

    async def close(self) -> None:
        await self._client.aclose()
        await self._client.connection_pool.disconnect()
