"""A stream kept as an event log, so a reader can start at any position and follow it live.

A background response, or a resumable stream, writes each event once (`append`) with its
position (OpenAI's `sequence_number`, or the SSE `id:` of a chat stream) and closes the log
(`end`) after the last. Readers (`read(after=N)`) get every event after N still kept, then the
live ones as they come, and stop at the end. Nothing else is kept: the stream's default path,
which is not resumable, never touches a log.

Two logs share this protocol: `MemoryEventLog` (one process; bounded in streams and events)
here, and `RedisEventLog` (a Redis Stream per log, shared by replicas) in `redis_event_log.py`.
Both forget a log `ttl_s` after its last write.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

Entry = tuple[int, bytes]  # (position, the event's bytes as the client receives them)
Alive = Callable[[], Awaitable[bool]]  # whether the stream's writer may still write


class EventLog(Protocol):
    async def append(self, log_id: str, entries: list[Entry]) -> None:
        """Add events, in order, after those already there."""

    async def end(self, log_id: str) -> None:
        """No event follows: readers stop after the last one."""

    def read(
        self, log_id: str, after: int, alive: Alive | None = None, poll_s: float = 5.0
    ) -> AsyncIterator[Entry]:
        """The kept events after position `after`, then the live ones until the end. With
        `alive`, asked each `poll_s` of silence: a writer gone for good stops the reading."""
        ...

    async def exists(self, log_id: str) -> bool: ...

    async def set_meta(self, log_id: str, meta: bytes) -> None:
        """What the log is (whose, written by which process), kept as long as the log."""

    async def get_meta(self, log_id: str) -> bytes | None: ...

    async def request_cancel(self, log_id: str) -> None:
        """Ask whichever process writes the log to stop (a cancel that reached another replica)."""

    def on_cancel(self, callback: Callable[[str], None]) -> None:
        """Call `callback(log_id)` when a cancel is asked for (`request_cancel`), from any process."""

    async def claim(self, owner: str, log_id: str, limit: int) -> bool:
        """Count `log_id` among `owner`'s running logs if fewer than `limit` are (one already
        counted is renewed, whatever the count), wherever the log is shared: False when full."""

    async def unclaim(self, owner: str, log_id: str) -> None: ...

    async def close(self) -> None: ...


@dataclass
class _Log:
    entries: deque[Entry]
    total: int = 0  # events ever appended; the first kept is number `total - len(entries)`
    ended: bool = False
    meta: bytes | None = None
    touched: float = field(default_factory=time.monotonic)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def wake(self) -> None:
        """Every reader waiting is woken; the next wait is on a new event."""
        self.touched = time.monotonic()
        changed, self.changed = self.changed, asyncio.Event()
        changed.set()


class MemoryEventLog:
    """In this process: at most `max_logs` logs (the least recently written go first) of at
    most `max_events` events each (the oldest go first), each forgotten `ttl_s` after it was
    last written."""

    def __init__(self, ttl_s: float = 600.0, max_events: int = 50_000, max_logs: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self.max_events = max_events
        self.max_logs = max_logs
        self._logs: OrderedDict[str, _Log] = OrderedDict()
        self._on_cancel: Callable[[str], None] | None = None
        self._claims: dict[str, set[str]] = {}  # owner -> its running logs (`claim`)

    def _log(self, log_id: str) -> _Log:
        self._expire()
        log = self._logs.get(log_id)
        if log is None:
            log = self._logs[log_id] = _Log(deque(maxlen=self.max_events))
            while len(self._logs) > self.max_logs:
                _, dropped = self._logs.popitem(last=False)
                dropped.ended = True
                dropped.wake()
        else:
            self._logs.move_to_end(log_id)
        return log

    def _expire(self) -> None:
        deadline = time.monotonic() - self.ttl_s
        while self._logs:
            log_id, oldest = next(iter(self._logs.items()))
            if oldest.touched >= deadline:
                return
            del self._logs[log_id]
            oldest.ended = True
            oldest.wake()

    async def append(self, log_id: str, entries: list[Entry]) -> None:
        log = self._log(log_id)
        log.entries.extend(entries)
        log.total += len(entries)
        log.wake()

    async def end(self, log_id: str) -> None:
        log = self._log(log_id)
        log.ended = True
        log.wake()

    async def exists(self, log_id: str) -> bool:
        self._expire()
        return log_id in self._logs

    async def set_meta(self, log_id: str, meta: bytes) -> None:
        self._log(log_id).meta = meta

    async def get_meta(self, log_id: str) -> bytes | None:
        self._expire()
        log = self._logs.get(log_id)
        return log.meta if log is not None else None

    async def request_cancel(self, log_id: str) -> None:
        if self._on_cancel is not None:
            self._on_cancel(log_id)

    async def claim(self, owner: str, log_id: str, limit: int) -> bool:
        running = self._claims.setdefault(owner, set())
        if log_id not in running and len(running) >= limit:
            return False
        running.add(log_id)
        return True

    async def unclaim(self, owner: str, log_id: str) -> None:
        running = self._claims.get(owner)
        if running is not None:
            running.discard(log_id)
            if not running:
                del self._claims[owner]

    def on_cancel(self, callback: Callable[[str], None]) -> None:
        self._on_cancel = callback

    async def read(
        self, log_id: str, after: int, alive: Alive | None = None, poll_s: float = 5.0
    ) -> AsyncIterator[Entry]:
        self._expire()
        log = self._logs.get(log_id)
        if log is None:
            return
        base = log.total - len(log.entries)
        following = base + next((i for i, entry in enumerate(log.entries) if entry[0] > after), len(log.entries))
        while True:
            changed = log.changed
            if following < log.total:
                base = log.total - len(log.entries)
                following = max(following, base)  # events dropped meanwhile (the log's bound)
                entry = log.entries[following - base]
                following += 1
                yield entry
                continue
            if log.ended:
                return
            try:
                await asyncio.wait_for(changed.wait(), poll_s)
            except TimeoutError:
                if alive is not None and not await alive():
                    return

    async def close(self) -> None:
        for log in self._logs.values():
            log.ended = True
            log.wake()
        self._logs.clear()
