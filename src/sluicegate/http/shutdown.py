"""Graceful shutdown, shared by the server that got the signal and the requests in flight.

The server calls `begin(timeout_s)` once it has stopped accepting connections. Requests in
flight may finish until the deadline; then `end()` stops every one still waiting: a stream
already under way ends with its door's error event and terminator, a request that has sent
nothing yet gets a 503. Each waiting request holds its own future (`watch()`), so ending N
requests costs N callbacks and a request that finishes costs one set removal, whatever N is.
"""

from __future__ import annotations

import asyncio

from sluicegate.errors import ServiceUnavailableError


class Shutdown:
    def __init__(self) -> None:
        self.begun = False
        self.over = False
        self._watching: set[asyncio.Future[None]] = set()
        self._timer: asyncio.TimerHandle | None = None

    def watch(self) -> asyncio.Future[None]:
        """A future that completes when in-flight work must end (already done if it must)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.over:
            future.set_result(None)
        else:
            self._watching.add(future)
        return future

    def unwatch(self, future: asyncio.Future[None]) -> None:
        self._watching.discard(future)

    def begin(self, timeout_s: float) -> None:
        """Stop taking new work; end what is left after `timeout_s` seconds."""
        if self.begun:
            return
        self.begun = True
        self._timer = asyncio.get_running_loop().call_later(max(0.0, timeout_s), self.end)

    def end(self) -> None:
        """End every request still in flight now (the deadline, or a second signal)."""
        self.begun = self.over = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        watching, self._watching = self._watching, set()
        for future in watching:
            if not future.done():
                future.set_result(None)

    @property
    def in_flight(self) -> int:
        return len(self._watching)


def shutting_down() -> ServiceUnavailableError:
    return ServiceUnavailableError(
        "The gateway is shutting down; retry the request.", code="shutting_down", retry_after=1
    )
