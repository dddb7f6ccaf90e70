"""A streaming ASGI response that notices a client leaving even while nothing is being sent.

Starlette's StreamingResponse only notices a disconnect on its next write on some servers;
a model that is still thinking would go on generating for nobody. Here a watcher waits on
`receive()` for `http.disconnect` and cancels the producer at once, whose `finally` blocks
then close the provider (the local model stops, the upstream connection is closed).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from starlette.types import Receive, Scope, Send

SSE_HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


def watch_disconnect(receive: Receive) -> asyncio.Future[None]:
    """A future that completes when the client goes away (the request body already read)."""
    return asyncio.ensure_future(_wait_for_disconnect(receive))


async def _wait_for_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


class EventStreamResponse:
    def __init__(
        self,
        body: AsyncIterator[bytes],
        headers: list[tuple[bytes, bytes]] | None = None,
        disconnect: asyncio.Future[None] | None = None,
    ) -> None:
        self.body = body
        self.headers = SSE_HEADERS + (headers or [])
        self.disconnect = disconnect

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        producer = asyncio.ensure_future(self._produce(send))
        watcher = self.disconnect or watch_disconnect(receive)
        try:
            await asyncio.wait((producer, watcher), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (producer, watcher):
                task.cancel()
            await asyncio.gather(producer, watcher, return_exceptions=True)
        if producer.done() and not producer.cancelled() and producer.exception() is not None:
            exc = producer.exception()
            if not isinstance(exc, OSError):
                raise exc  # type: ignore[misc]

    async def _produce(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.headers})
        try:
            async for data in self.body:
                await send({"type": "http.response.body", "body": data, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            aclose = getattr(self.body, "aclose", None)
            if aclose is not None:
                await aclose()
