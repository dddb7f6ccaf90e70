"""Slices of a busy key's Redis rate limits, so most of its requests are counted in memory.

With Redis every process shares one limit per key, but a check per request costs a Redis command
per request. For a key whose limits are large, a process instead counts a *slice* in Redis at
once (up to 128 requests, and their prompt estimates as tokens), by the same atomic script, and
admits the key's next requests against the slice in memory while it lasts: at most `slice_s`,
and never past the minute it was counted in.

Why the limit still holds across processes: a slice is counted in Redis before any of its
requests is admitted, and Redis grants it only if the whole slice fits. What a slice does not
use stays counted (a process may refuse a little early, never admit too much). Slices are at
most 1/64 of a limit, so what one process holds back is small; a key with a small limit (fewer
than 128 requests or 64 prompts' tokens per minute) is checked request by request, exactly, as
is every key for a second after Redis refused one of its slices.

A slice is renewed ahead: once three quarters of it (or of its time) are used, the next one is
counted in the background while requests go on against this one, and what this one has left
joins the next (it is counted already, and still this process's to use, within the same minute).
So a busy key's requests do not stop for a Redis round trip every 128 requests.

A slice of 128 (not 32) because each Redis call costs the process a good deal of CPU in redis-py,
which a larger slice spreads over more requests (bench/results/levers.md has the figures).
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Awaitable, Callable

from sluicegate.governance.group_commit import RENEW_AT, OnePerKey
from sluicegate.governance.limits import WINDOW_S, Counts, Decision, LimitAsk, RedisLimiter, duration

SLICE_REQUESTS = 128
LIMIT_SHARE = 64  # a slice is at most this fraction of a limit
NO_SLICE_S = 1.0


class Slice:
    __slots__ = (
        "expires",
        "minute",
        "remaining_requests",
        "remaining_tokens",
        "renew_below",
        "renew_from",
        "requests",
        "tokens",
    )

    def __init__(
        self, requests: int, tokens: int, counts: Counts, rpm: int | None, tpm: int | None, slice_s: float
    ) -> None:
        self.requests = requests  # what this process may still admit on the slice
        self.tokens = tokens
        self.minute = math.floor(time.time() / WINDOW_S)
        taken = time.monotonic()
        self.expires = taken + slice_s
        self.renew_below = requests * (1 - RENEW_AT)  # the next slice is counted below this
        self.renew_from = taken + slice_s * RENEW_AT  # or from this moment on
        # what the key had left once the slice was counted (the slice's unused part is added back
        # when a header is made: it is this process's to use)
        kept = 1 - counts.frac
        self.remaining_requests = (rpm or 0) - (counts.req_prev * kept + counts.req_cur + requests)
        self.remaining_tokens = (tpm or 0) - (counts.tok_prev * kept + counts.tok_cur + tokens)


class LimitSlices:
    def __init__(
        self,
        limiter: RedisLimiter,
        per_request: Callable[[LimitAsk], Awaitable[Decision]],
        slice_s: float = 1.0,
        slice_requests: int = SLICE_REQUESTS,
    ) -> None:
        self._limiter = limiter
        self._slice_requests = slice_requests
        self._per_request = per_request
        self._slice_s = slice_s
        self._slices: dict[str, Slice] = {}
        self._taking: OnePerKey[bool] = OnePerKey()
        self._no_slice_until: dict[str, float] = {}
        self.taken = 0

    def try_acquire(self, ask: LimitAsk) -> Decision | None:
        """The decision when the key's slice has room (nearly every request of a busy key),
        without a coroutine; None when the slow path must run."""
        key_id, rpm, tpm, cost = ask
        piece = self._slices.get(key_id)
        if piece is None:
            return None
        now = time.monotonic()
        if not self._fits(piece, cost, now):
            return None
        piece.requests -= 1
        if tpm:
            piece.tokens -= cost
        if piece.requests < piece.renew_below or now >= piece.renew_from:
            self._renew(key_id, rpm, tpm, cost)
        return Decision(True, self._headers(piece, rpm, tpm))

    async def acquire(self, ask: LimitAsk) -> Decision:
        key_id, rpm, tpm, cost = ask
        while True:
            decision = self.try_acquire(ask)
            if decision is not None:
                return decision
            self._slices.pop(key_id, None)  # used up, or past its time or minute
            size = self._size(key_id, rpm, tpm, cost)
            if size is None or not await self._taking.run(
                key_id, functools.partial(self._take, key_id, rpm, tpm, *size)
            ):
                return await self._per_request(ask)

    def _fits(self, piece: Slice, cost: int, now: float) -> bool:
        return (
            piece.requests >= 1
            and piece.tokens >= cost
            and now < piece.expires
            and math.floor(time.time() / WINDOW_S) == piece.minute
        )

    def _size(self, key_id: str, rpm: int | None, tpm: int | None, cost: int) -> tuple[int, int] | None:
        """(requests, tokens) of a slice for this key now, or None: check request by request."""
        if self._slice_s <= 0 or time.monotonic() < self._no_slice_until.get(key_id, 0.0):
            return None
        requests = min(self._slice_requests, rpm // LIMIT_SHARE) if rpm else self._slice_requests
        tokens = requests * cost if tpm else 0
        if requests < 2 or (tpm and tokens * LIMIT_SHARE > tpm):
            return None
        return requests, tokens

    def _renew(self, key_id: str, rpm: int | None, tpm: int | None, cost: int) -> None:
        """Count the key's next slice in the background (no request waits for it yet)."""
        if self._taking.busy(key_id):
            return
        size = self._size(key_id, rpm, tpm, cost)
        if size is not None:
            take = functools.partial(self._take, key_id, rpm, tpm, *size)
            self._taking.ahead(key_id, take, "counting a rate-limit slice")

    async def _take(self, key_id: str, rpm: int | None, tpm: int | None, requests: int, tokens: int) -> bool:
        ok, counts = await self._limiter.acquire_slice(key_id, rpm, tpm, requests, tokens)
        if not ok:
            self._no_slice_until[key_id] = time.monotonic() + NO_SLICE_S
            return False
        self.taken += 1
        piece = Slice(requests, tokens, counts, rpm, tpm, self._slice_s)
        old = self._slices.get(key_id)
        if old is not None and old.minute == piece.minute:  # counted in the same minute: still ours
            piece.requests += max(0, old.requests)
            piece.tokens += max(0, old.tokens)
        self._slices[key_id] = piece
        return True

    @staticmethod
    def _headers(piece: Slice, rpm: int | None, tpm: int | None) -> dict[str, str]:
        reset = duration((1 - (time.time() / WINDOW_S - piece.minute)) * WINDOW_S)
        headers: dict[str, str] = {}
        if rpm:
            headers["x-ratelimit-limit-requests"] = str(rpm)
            headers["x-ratelimit-remaining-requests"] = str(
                max(0, math.floor(piece.remaining_requests + piece.requests))
            )
            headers["x-ratelimit-reset-requests"] = reset
        if tpm:
            headers["x-ratelimit-limit-tokens"] = str(tpm)
            headers["x-ratelimit-remaining-tokens"] = str(
                max(0, math.floor(piece.remaining_tokens + piece.tokens))
            )
            headers["x-ratelimit-reset-tokens"] = reset
        return headers
