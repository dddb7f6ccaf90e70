"""A local server speaking OpenAI's exact chat-completions wire format, for provider tests.

It stands in for a hosted OpenAI-compatible upstream (the real one is out of reach here).
Replies are queued by the test (`upstream.enqueue(...)`): raw SSE byte chunks sent as they
are, so recorded streams and quirky servers can be replayed byte for byte; with nothing
queued it streams an echo of the last user message. It records every request it receives
and notices when a client closes the connection mid-stream.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web


@dataclass
class Reply:
    status: int = 200
    chunks: list[bytes] = field(default_factory=list)
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0  # before each chunk (the status and headers are already out)
    wait_s: float = 0.0  # before answering at all (no status yet)
    hang_after: bool = False  # keep the connection open after the chunks, sending nothing


def sse(payload: Any) -> bytes:
    return b"data: " + (payload if isinstance(payload, bytes) else orjson.dumps(payload)) + b"\n\n"


def chunk(content: str | None = None, finish: str | None = None, index: int = 0, **delta: Any) -> bytes:
    if content is not None:
        delta["content"] = content
    return sse(
        {
            "id": "chatcmpl-upstream",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": "upstream-model",
            "choices": [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
    )


class OpenAIUpstream:
    def __init__(self) -> None:
        self.replies: deque[Reply] = deque()
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.disconnects = 0
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def enqueue(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    def reset(self) -> None:
        self.replies.clear()
        self.requests.clear()
        self.headers.clear()
        self.disconnects = 0

    def start(self) -> OpenAIUpstream:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("mock upstream did not start")
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

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        self._runner = web.AppRunner(app, handle_signals=False, handler_cancellation=True)
        loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._ready.set()
        loop.run_forever()

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        reply = self.replies.popleft() if self.replies else self._echo(body)
        if reply.wait_s:
            await asyncio.sleep(reply.wait_s)
        if reply.status != 200 or reply.body is not None:
            return web.Response(
                status=reply.status,
                body=reply.body or b"",
                headers={"Content-Type": "application/json", **reply.headers},
            )
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", **reply.headers})
        try:
            await response.prepare(request)
            for data in reply.chunks:
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

    @staticmethod
    def _echo(body: dict[str, Any]) -> Reply:
        text = str(body["messages"][-1].get("content"))
        words = text.split(" ")
        if not body.get("stream"):
            answer = {
                "id": "chatcmpl-upstream",
                "object": "chat.completion",
                "created": 1700000000,
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": 5,
                    "completion_tokens": len(words),
                    "total_tokens": 5 + len(words),
                },
            }
            return Reply(body=orjson.dumps(answer))
        chunks = [chunk(role="assistant", content="")]
        chunks += [chunk(word if i == 0 else " " + word) for i, word in enumerate(words)]
        chunks.append(chunk(finish="stop"))
        if (body.get("stream_options") or {}).get("include_usage"):
            chunks.append(
                sse(
                    {
                        "id": "chatcmpl-upstream",
                        "object": "chat.completion.chunk",
                        "created": 1700000000,
                        "model": body["model"],
                        "choices": [],
                        "usage": {
                            "prompt_tokens": 5,
                            "completion_tokens": len(words),
                            "total_tokens": 5 + len(words),
                        },
                    }
                )
            )
        chunks.append(b"data: [DONE]\n\n")
        return Reply(chunks=chunks)
