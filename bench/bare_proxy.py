"""A bare byte-forwarding proxy: the floor of one Python HTTP hop, for ``python -m bench.hop``.

uvicorn (uvloop + httptools) serves a raw ASGI callable; aiohttp sends the request body to the
upstream and copies the answer's bytes back as they arrive. No parsing, no auth, no routing, no
middleware: what a gateway costs beyond this is its own work, the rest is the price of two HTTP
connections in Python. Run: ``python -m bench.bare_proxy --upstream http://127.0.0.1:8900 --port 8901``.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import aiohttp

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

FORWARDED = frozenset({b"content-type", b"authorization", b"accept"})


class BareProxy:
    """ASGI app forwarding every request to ``upstream`` + the same path, bytes untouched."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.session: aiohttp.ClientSession | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            if scope["path"] == "/health":
                await _plain(send, 200, b"ok")
            else:
                await self._forward(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=30)
                self.session = aiohttp.ClientSession(connector=connector, auto_decompress=False)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.session is not None:
                    await self.session.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _forward(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.session is not None, "lifespan startup did not run"
        chunks = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"] if k in FORWARDED}
        url = self.upstream + scope["path"]
        started = False
        try:
            async with self.session.request(
                scope["method"], url, data=b"".join(chunks), headers=headers
            ) as upstream:
                content_type = upstream.headers.get("content-type", "application/octet-stream")
                await send(
                    {
                        "type": "http.response.start",
                        "status": upstream.status,
                        "headers": [(b"content-type", content_type.encode("latin-1"))],
                    }
                )
                started = True
                async for data in upstream.content.iter_any():
                    await send({"type": "http.response.body", "body": data, "more_body": True})
        except aiohttp.ClientError as exc:
            if not started:
                await _plain(send, 502, f"upstream failed: {exc}".encode())
                return
        await send({"type": "http.response.body", "body": b""})


async def _plain(send: Send, status: int, body: bytes) -> None:
    await send(
        {"type": "http.response.start", "status": status, "headers": [(b"content-type", b"text/plain")]}
    )
    await send({"type": "http.response.body", "body": body})


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--upstream", required=True, help="upstream origin, e.g. http://127.0.0.1:8900")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8901)
    args = parser.parse_args(argv)
    uvicorn.run(
        BareProxy(args.upstream),
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
