"""A streaming ASGI response that notices a client leaving even while nothing is being sent,
keeps a quiet connection alive, and ends when the server's shutdown deadline comes.

Starlette's StreamingResponse only notices a disconnect on its next write on some servers;
a model that is still thinking would go on generating for nobody. Here a watcher waits on
`receive()` for `http.disconnect` and cancels the producer at once, whose `finally` blocks
then close the provider (the local model stops, the upstream connection is closed).

Keep-alives cost nothing per chunk: the producer only notes the time of each write, and one
timer per stream, re-armed rarely, sends the door's keep-alive bytes from its own task while
the producer waits for data; the producer waits for such a write before its next one, so two
writes never overlap. At the shutdown deadline the producer is cancelled; the body (see
`api/serving/stream_body.py`) turns that cancellation into the door's error event and terminator.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from starlette.types import Receive, Scope, Send

from sluicegate.http.shutdown import Shutdown

SSE_HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


@dataclass(frozen=True, slots=True)
class KeepAlive:
    data: bytes  # the door's keep-alive: an SSE comment, or Anthropic's `ping` event
    first_s: float  # silence before the first one
    interval_s: float  # then one every interval while the silence lasts
    note: Callable[[], bytes] | None = None  # SSE comment lines sent before it (the prompt's progress)

    def payload(self) -> bytes:
        return self.note() + self.data if self.note is not None else self.data


def watch_disconnect(receive: Receive) -> asyncio.Future[None]:
    """A future that completes when the client goes away (the request body already read)."""
    return asyncio.ensure_future(_wait_for_disconnect(receive))


async def _wait_for_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


class Closing(bytes):
    """A body's last bytes: held until the body ends (its `finally` blocks have run, at no wait)
    and sent with the end of the response, so the terminator costs no write of its own."""

    __slots__ = ()


class EventStreamResponse:
    def __init__(
        self,
        body: AsyncIterator[bytes],
        headers: list[tuple[bytes, bytes]] | None = None,
        disconnect: asyncio.Future[None] | None = None,
        keepalive: KeepAlive | None = None,
        shutdown: Shutdown | None = None,
        keepalive_at_once: bool = False,
    ) -> None:
        self.body = body
        self.headers = SSE_HEADERS + (headers or [])
        self.disconnect = disconnect
        self.keepalive = keepalive
        self.shutdown = shutdown
        self.keepalive_at_once = keepalive_at_once  # the first bytes are a keep-alive (still waiting)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Produce in the server's own task. The client leaving, or the shutdown deadline,
        cancels that task; the cancellation is then taken back, so the server sees an answer
        that ended (as it did), not a cancelled one."""
        task = asyncio.current_task()
        assert task is not None
        watcher = self.disconnect or watch_disconnect(receive)
        stop = self.shutdown.watch() if self.shutdown is not None else None
        interrupted = False
        producing = True

        def interrupt(_: asyncio.Future[None]) -> None:
            nonlocal interrupted
            if producing and not interrupted:
                interrupted = True
                task.cancel()

        watcher.add_done_callback(interrupt)
        if stop is not None:
            stop.add_done_callback(interrupt)
        try:
            await self._produce(send)
        except asyncio.CancelledError:
            if not interrupted or task.uncancel() > 0:
                raise  # cancelled from outside too: the server's own cancellation goes on
        except OSError:
            pass  # the client's socket failed under a write: it has gone
        finally:
            producing = False
            watcher.remove_done_callback(interrupt)
            watcher.cancel()
            if stop is not None and self.shutdown is not None:
                stop.remove_done_callback(interrupt)
                self.shutdown.unwatch(stop)
        if interrupted and task.cancelling():
            task.uncancel()  # cancelled while it was finishing: nothing was left to stop

    async def _produce(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.headers})
        self.headers = []  # sent: a held stream keeps no copy (memory per idle stream)
        writer = None
        held = b""  # the body's Closing bytes, sent with the end of the body
        try:
            if self.keepalive is None:
                async for data in self.body:
                    if held:
                        await send({"type": "http.response.body", "body": held, "more_body": True})
                        held = b""
                    if type(data) is Closing:
                        held = data
                    else:
                        await send({"type": "http.response.body", "body": data, "more_body": True})
                    del data  # sent: not kept while the stream waits for more
                await send({"type": "http.response.body", "body": held, "more_body": False})
            else:
                writer = _KeepAliveWriter(send, self.keepalive)
                if self.keepalive_at_once:
                    await writer.keepalive_now()
                async for data in self.body:
                    if held:
                        await writer.write(held)
                        held = b""
                    if type(data) is Closing:
                        held = data
                    else:
                        await writer.write(data)
                    del data  # sent: not kept while the stream waits for more
                await writer.end(held)
        finally:
            if writer is not None:
                writer.close()
            aclose = getattr(self.body, "aclose", None)
            if aclose is not None:
                await aclose()


class _KeepAliveWriter:
    """Writes the body's data, and a keep-alive whenever the body has been quiet too long."""

    __slots__ = ("_closed", "_keepalive", "_last", "_loop", "_ping", "_quiet", "_send", "_timer", "_writing")

    def __init__(self, send: Send, keepalive: KeepAlive) -> None:
        self._loop = asyncio.get_running_loop()
        self._send = send
        self._keepalive = keepalive
        self._last = self._loop.time()
        self._quiet = keepalive.first_s  # silence allowed before the next keep-alive
        self._writing = False
        self._closed = False
        self._ping: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = self._loop.call_later(keepalive.first_s, self._due)

    async def write(self, data: bytes) -> None:
        if self._ping is not None:
            await self._ping
        self._writing = True
        try:
            await self._send({"type": "http.response.body", "body": data, "more_body": True})
        finally:
            self._writing = False
        self._last = self._loop.time()
        self._quiet = self._keepalive.first_s

    async def end(self, data: bytes) -> None:
        """The last bytes, with the end of the body (after a keep-alive under way)."""
        if self._ping is not None:
            await self._ping
        self._closed = True
        await self._send({"type": "http.response.body", "body": data, "more_body": False})

    async def keepalive_now(self) -> None:
        await self.write(self._keepalive.payload())
        self._quiet = self._keepalive.interval_s

    def _due(self) -> None:
        if self._closed:
            return
        wait = self._last + self._quiet - self._loop.time()
        if self._writing or self._ping is not None:
            wait = self._quiet  # a write is under way: it resets the silence anyway
        if wait > 0:
            self._timer = self._loop.call_later(wait, self._due)
            return
        self._timer = None
        self._ping = self._loop.create_task(self._send_keepalive())

    async def _send_keepalive(self) -> None:
        try:
            with contextlib.suppress(Exception):  # a client gone: the watcher ends the stream
                await self._send(
                    {"type": "http.response.body", "body": self._keepalive.payload(), "more_body": True}
                )
        finally:
            self._ping = None
            self._last = self._loop.time()
            self._quiet = self._keepalive.interval_s
            if not self._closed:
                self._timer = self._loop.call_later(self._quiet, self._due)

    def close(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        if self._ping is not None:
            self._ping.cancel()
