"""Group commit: the admission calls of many requests in one storage round trip.

Each request's budget reservation and rate-limit check is one atomic step in the database or in
Redis, but taking that step once per request costs a transaction (or a Redis command) and an
executor hand-off each. A `GroupCommit` sends one batch at a time: the calls made in the same
event-loop iteration, and those that arrive while a batch is in flight, go together in the
next one. Under light load a batch is a single call and waits for nothing extra; under heavy
load the batches grow and the per-request cost falls. Each item keeps its own answer, in order,
so atomicity is per item, as before: the storage applies a batch's items one after another.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

log = logging.getLogger("sluicegate.governance")
RENEW_AT = 0.75  # a lease's or slice's successor is asked for once this share of it (or of its time) is used
Item = TypeVar("Item")
Result = TypeVar("Result")


class GroupCommit(Generic[Item, Result]):
    def __init__(
        self, flush: Callable[[Sequence[Item]], Awaitable[Sequence[Result]]], max_batch: int = 256
    ) -> None:
        self._flush = flush
        self._max_batch = max_batch
        self._items: list[Item] = []
        self._waiters: list[asyncio.Future[Result]] = []
        self._task: asyncio.Task[None] | None = None
        self.batches = 0  # flushes made (the benchmark reports items per batch)
        self.items = 0

    def submit(self, item: Item) -> asyncio.Future[Result]:
        """The item's answer, once its batch is through (the batch's failure, if it fails)."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Result] = loop.create_future()
        self._items.append(item)
        self._waiters.append(waiter)
        if self._task is None:
            self._task = loop.create_task(self._run())
        return waiter

    async def _run(self) -> None:
        try:
            while self._items:
                items, waiters = self._items[: self._max_batch], self._waiters[: self._max_batch]
                del self._items[: len(items)], self._waiters[: len(waiters)]
                self.batches += 1
                self.items += len(items)
                try:
                    results = await self._flush(items)
                    if len(results) != len(items):
                        raise RuntimeError(f"a batch of {len(items)} got {len(results)} answers")
                except asyncio.CancelledError:
                    for waiter in waiters:
                        waiter.cancel()
                    raise
                except Exception as exc:
                    for waiter in waiters:
                        if not waiter.done():
                            waiter.set_exception(exc)
                    continue
                for waiter, result in zip(waiters, results, strict=True):
                    if not waiter.done():
                        waiter.set_result(result)
        finally:
            self._task = None
            if self._items:  # cancelled with items waiting: they fail rather than hang
                error = RuntimeError("the batch was cancelled")
                for waiter in self._waiters:
                    if not waiter.done():
                        waiter.set_exception(error)
                self._items.clear()
                self._waiters.clear()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):  # its waiters have their failure
                await self._task


class OnePerKey(Generic[Result]):
    """One call in flight per key: callers that come while a key's call runs share its answer
    (a key's budget lease or limit slice is taken once, however many requests want it)."""

    def __init__(self) -> None:
        self._flying: dict[str, asyncio.Future[Result]] = {}

    async def run(self, key: str, work: Callable[[], Awaitable[Result]]) -> Result:
        return await asyncio.shield(self.start(key, work))

    def start(self, key: str, work: Callable[[], Awaitable[Result]]) -> asyncio.Future[Result]:
        """The key's call in flight, started now if there is none (nobody waits for it yet)."""
        flying = self._flying.get(key)
        if flying is None:
            flying = self._flying[key] = asyncio.ensure_future(self._call(key, work))
            flying.add_done_callback(functools.partial(self._forget, key))  # cancelled before it ran
        return flying

    def _forget(self, key: str, done: asyncio.Future[Result]) -> None:
        if self._flying.get(key) is done:
            del self._flying[key]

    async def _call(self, key: str, work: Callable[[], Awaitable[Result]]) -> Result:
        """The call, forgotten as it ends, not in a done-callback a loop iteration later: in
        between, a caller would be handed the finished call and could go round its loop on it
        without ever yielding to the loop that would run that callback."""
        try:
            return await work()
        finally:
            self._flying.pop(key, None)

    def busy(self, key: str) -> bool:
        return key in self._flying

    def ahead(self, key: str, work: Callable[[], Awaitable[Result]], what: str) -> None:
        """Start the key's call in the background unless one is in flight (a lease or slice
        renewed ahead): nobody waits for it, so its failure is logged here, and the next request
        that needs one asks again."""
        if key not in self._flying:
            self.start(key, work).add_done_callback(functools.partial(_log_failure, what))


def _log_failure(what: str, done: asyncio.Future[Any]) -> None:
    if not done.cancelled() and done.exception() is not None:
        log.warning("%s failed: %r", what, done.exception())
