"""What the local stand-ins for hosted providers share: an aiohttp app on its own thread and
event loop, listening on a random 127.0.0.1 port, answering from a queue of `Reply`s.

A provider's module adds only its routes, how it records a request and its echo answer.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Generic, Self, TypeVar

from aiohttp import web

Recorded = TypeVar("Recorded")


@dataclass
class Reply:
    status: int = 200
    chunks: list[bytes] = field(default_factory=list)  # written one by one, as they are
    body: bytes | None = None  # a whole answer (or an error body)
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0  # before each chunk (the status and headers are already out)
    wait_s: float = 0.0  # before answering at all (no status yet)
    hang_after: bool = False  # keep the connection open after the chunks, sending nothing
    # the chunks wait for this (the status and headers are already out): a test decides when
    release: threading.Event | None = None
    release_at: int = 0  # the chunk `release` is waited for before (0: before the first)


class WireServer(Generic[Recorded]):
    """The thread, loop, queue and lifecycle; subclasses add routes in `_routes`."""

    label = "mock upstream"  # for the error when it does not start
    path_prefix = ""  # appended to the origin in `base_url`
    json_content_type = "application/json"  # of whole answers and error bodies
    handler_cancellation = True  # a client going away cancels its handler

    def __init__(self) -> None:
        self.replies: deque[Reply] = deque()
        self.requests: list[Recorded] = []
        self.headers: list[dict[str, str]] = []
        self.disconnects = 0
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path_prefix}"

    def enqueue(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    def reset(self) -> None:
        self.replies.clear()
        self.requests.clear()
        self.headers.clear()
        self.disconnects = 0

    def start(self) -> Self:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError(f"{self.label} did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(5)
            self._loop.call_soon_threadsafe(self._loop.stop)

    def wait_for_disconnects(self, count: int, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.disconnects >= count:
                return True
            time.sleep(0.02)
        return False

    def _routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        app = web.Application()
        self._routes(app)
        self._runner = web.AppRunner(
            app, handle_signals=False, handler_cancellation=self.handler_cancellation
        )
        loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._ready.set()
        loop.run_forever()

    async def _send(self, request: web.Request, reply: Reply) -> web.StreamResponse:
        """A whole answer when the reply has a body or an error status, else its chunks as SSE."""
        if reply.wait_s:
            await asyncio.sleep(reply.wait_s)
        if reply.status != 200 or reply.body is not None:
            return web.Response(
                status=reply.status,
                body=reply.body or b"",
                headers={"Content-Type": self.json_content_type, **reply.headers},
            )
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", **reply.headers})
        try:
            await response.prepare(request)
            for index, data in enumerate(reply.chunks):
                if reply.release is not None and index == reply.release_at:
                    await asyncio.get_running_loop().run_in_executor(None, reply.release.wait, 60)
                if reply.delay_s:
                    await asyncio.sleep(reply.delay_s)
                await response.write(data)
            if reply.hang_after:
                await asyncio.sleep(30)
            await response.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            self.disconnects += 1
            raise
        return response
