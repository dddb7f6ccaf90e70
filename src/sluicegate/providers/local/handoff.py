"""Events from the engine thread to the event loop, handed over once per engine step.

Handing each token over by itself (`call_soon_threadsafe` per event) wakes the event loop once per
token and sequence, and every wake-up takes the GIL from the engine thread between two llama.cpp
calls, so the engine waits on the loop several times a step. Collected here and handed over in one
call just before the next `llama_decode` (and before the engine goes idle), the loop does its work
while llama.cpp computes without the GIL.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

Item = tuple["asyncio.Queue[Any]", Any]


class Outbox:
    """What one event loop's jobs were sent since the last flush. `put` and `flush` are called
    from the engine thread; the queues are filled on the loop's own thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._items: list[Item] = []
        self._lock = threading.Lock()

    def put(self, queue: asyncio.Queue[Any], item: Any) -> None:
        with self._lock:
            self._items.append((queue, item))

    def flush(self) -> None:
        with self._lock:
            items, self._items = self._items, []
        if items and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(_deliver, items)


def _deliver(items: list[Item]) -> None:
    for queue, item in items:
        queue.put_nowait(item)


class Outboxes:
    """One outbox per event loop that streams from the model (a worker has one; tests may have
    several in turn), flushed together by the engine."""

    def __init__(self) -> None:
        self._boxes: dict[asyncio.AbstractEventLoop, Outbox] = {}
        self._lock = threading.Lock()

    def of(self, loop: asyncio.AbstractEventLoop) -> Outbox:
        with self._lock:
            for closed in [known for known in self._boxes if known.is_closed()]:
                del self._boxes[closed]
            box = self._boxes.get(loop)
            if box is None:
                box = self._boxes[loop] = Outbox(loop)
            return box

    def flush(self) -> None:
        with self._lock:
            boxes = list(self._boxes.values())
        for box in boxes:
            box.flush()
