"""The usage ledger's writer: records wait in memory and are written in batches, off the
request path, each batch in one transaction with its settlement (reservations released, spend
added, daily sums), so the ledger always adds up to the keys' spend.

A batch is written every `flush_s` or as soon as `batch` records wait. A clean stop writes
everything (Gateway.close). What waits in memory when the process crashes is not lost: each
request's open record is in the in-flight journal until its batch commits (governance/durable.py),
and is recorded as interrupted from there. While the database is unreachable, records are kept (up to
`buffer` of them, then the oldest are dropped with an error in the log) and retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from sluicegate.store.base import Store
from sluicegate.store.records import LedgerRecord

log = logging.getLogger("sluicegate.ledger")


class LedgerWriter:
    def __init__(
        self,
        store: Store,
        flush_s: float = 0.25,
        batch: int = 500,
        buffer: int = 200_000,
        on_written: Callable[[list[LedgerRecord]], None] | None = None,
    ) -> None:
        self._store = store
        self._on_written = on_written  # told each committed batch (the in-flight journal closes them)
        self._flush_s = flush_s
        self._batch = batch
        self._buffer = buffer
        self._pending: list[LedgerRecord] = []
        # Budget leases to release, each after the records added before it: (records added
        # before the release was asked for, reservation id).
        self._releases: list[tuple[int, str]] = []
        self._added = 0  # records ever added
        self._taken = 0  # records ever taken into a batch
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self.written = 0
        self.dropped = 0

    def add(self, record: LedgerRecord) -> None:
        self._pending.append(record)
        self._added += 1
        if len(self._pending) >= self._batch:
            self._wake.set()

    def release(self, reservation_id: str) -> None:
        """Release a budget lease once every record added so far is written (in the same
        transaction as the last of them), so its requests' spend is counted before it goes."""
        self._releases.append((self._added, reservation_id))

    @property
    def pending(self) -> int:
        return len(self._pending) + len(self._releases)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._flush_s)
            self._wake.clear()
            try:
                await self.flush()
            except Exception:
                log.exception("writing %d ledger records failed; retrying", len(self._pending))
                await asyncio.sleep(min(5.0, self._flush_s * 4))

    async def flush(self) -> None:
        """Write what waits now, in batches of `batch`. What arrives meanwhile waits for the
        next tick: on an asynchronous store (PostgreSQL) records keep arriving while a batch is
        written, and draining them too turned one transaction per `flush_s` into a stream of
        small ones back to back (35 a second per worker at saturation, each with its own commit)."""
        async with self._lock:
            goal = self._added
            while self._taken < goal or (self._releases and self._releases[0][0] <= goal):
                batch = self._pending[: self._batch]
                del self._pending[: len(batch)]
                upto = self._taken + len(batch)
                due = [r for r in self._releases if r[0] <= upto]
                del self._releases[: len(due)]  # in the order asked, so the due ones come first
                try:
                    await self._store.settle(batch, [reservation_id for _, reservation_id in due])
                except BaseException:
                    self._pending[:0] = batch  # keep them, in order, for the next try
                    self._releases[:0] = due
                    overflow = len(self._pending) - self._buffer
                    if overflow > 0:
                        del self._pending[:overflow]
                        self._taken += overflow  # gone: the releases after them are due
                        self.dropped += overflow
                        log.error("ledger buffer full: dropped the %d oldest records", overflow)
                    raise
                self._taken = upto
                self.written += len(batch)
                if self._on_written is not None:
                    self._on_written(batch)

    async def close(self) -> None:
        """Stop the timer and write whatever waits (a few tries, then log what is lost)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        for attempt in range(3):
            try:
                while self.pending:  # settles finishing meanwhile add more
                    await self.flush()
                return
            except Exception:
                log.exception("flushing the ledger at shutdown failed (try %d of 3)", attempt + 1)
                await asyncio.sleep(0.5)
        if self._pending:
            log.error("lost %d ledger records at shutdown: the database is unreachable", len(self._pending))
