"""Waiting for a provider's work while the client may leave and the server may stop.

If the waiting itself is cancelled (the server's last resort at shutdown), the work is
cancelled and awaited before the cancellation goes on: closing a generator that a task is
still running raised `aclose(): asynchronous generator is already running` before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from enum import Enum
from typing import Any, TypeVar

from sluicegate.http.shutdown import Shutdown

T = TypeVar("T")


class Outcome(Enum):
    DONE = "done"
    CLIENT_LEFT = "client left"
    SHUTDOWN = "shutdown"
    WAITING = "still waiting"


async def wait_for_work(
    work: asyncio.Future[T], disconnect: asyncio.Future[None], shutdown: Shutdown, patience_s: float | None
) -> Outcome:
    """How the wait ended: the work is done, the client left, the shutdown deadline came, or
    `patience_s` passed first (then a stream commits with a keep-alive and waits on)."""
    stop = shutdown.watch()
    try:
        await asyncio.wait((work, disconnect, stop), timeout=patience_s, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        await cancel(work)
        raise
    finally:
        shutdown.unwatch(stop)
    if disconnect.done():
        return Outcome.CLIENT_LEFT
    if work.done():
        return Outcome.DONE
    return Outcome.SHUTDOWN if stop.done() else Outcome.WAITING


async def cancel(work: asyncio.Future[Any]) -> None:
    """Cancel the work and wait until it has finished (its `finally` blocks have run)."""
    if work.done():
        if not work.cancelled():
            work.exception()  # retrieved: a failure nobody will read is not an error
        return
    work.cancel()
    await asyncio.wait((work,))
    if not work.cancelled():
        work.exception()


async def unless_client_leaves(work: Awaitable[T], disconnect: asyncio.Future[None]) -> T | None:
    """The work's result (or its exception), or None if the client goes away first: then the
    work is cancelled, so a client that gave up (a timeout, a closed tab) does not keep a model
    generating for nobody. If the caller is cancelled, the work is cancelled and awaited too."""
    task = asyncio.ensure_future(work)
    try:
        await asyncio.wait((task, disconnect), return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        await cancel(task)
        raise
    if not task.done():
        await cancel(task)
        return None
    return task.result()
