"""A local server speaking the Gemini API's exact wire format, for provider tests.

It stands in for `generativelanguage.googleapis.com` (out of reach here):
`POST /{version}/models/{model}:streamGenerateContent?alt=sse` answers Server-Sent Events
framed as Google frames them (`data: <json>\\r\\n\\r\\n`), `:generateContent` a whole JSON
answer, `:countTokens` a count. Replies are queued by the test (`enqueue`): events framed as
Google does, or raw bytes written as given (to cut JSON and UTF-8 across writes); with nothing
queued it echoes the last user text. Every request is recorded with its path, query and headers.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web


def frame(payload: Any, newline: bytes = b"\r\n") -> bytes:
    data = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    return b"data: " + data + newline + newline


@dataclass
class Reply:
    status: int = 200
    chunks: list[bytes] = field(default_factory=list)  # written one by one, as they are
    body: bytes | None = None  # a whole answer (or an error body)
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


def events_reply(*payloads: Any, newline: bytes = b"\r\n") -> Reply:
    return Reply(chunks=[frame(payload, newline) for payload in payloads])


def recording_lines(path: Path) -> list[bytes]:
    return [line for line in path.read_bytes().splitlines() if line.strip()]


def replay(path: Path, newline: bytes = b"\r\n") -> Reply:
    """A recorded `*.chunks.txt` (one event payload per line) re-framed as Google sends it,
    each line's bytes as recorded."""
    return Reply(chunks=[frame(line, newline) for line in recording_lines(path)])


def error_body(code: int, message: str, status: str, details: list[Any] | None = None) -> bytes:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details is not None:
        error["details"] = details
    return orjson.dumps({"error": error})


def text_event(text: str, finish: str | None = None, usage: dict[str, int] | None = None) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    event: dict[str, Any] = {"candidates": [candidate], "modelVersion": "gemini-test", "responseId": "resp-1"}
    if usage is not None:
        event["usageMetadata"] = usage
    return event


@dataclass
class Received:
    method: str  # streamGenerateContent | generateContent | countTokens
    model: str  # as in the path: models/gemini-...
    version: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: dict[str, Any]


class GeminiUpstream:
    def __init__(self) -> None:
        self.replies: deque[Reply] = deque()
        self.requests: list[Received] = []
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def enqueue(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    def reset(self) -> None:
        self.replies.clear()
        self.requests.clear()

    def start(self) -> GeminiUpstream:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("mock Gemini upstream did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(5)
            self._loop.call_soon_threadsafe(self._loop.stop)

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        app = web.Application()
        app.router.add_post("/{version}/{target:.+}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False)
        loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._ready.set()
        loop.run_forever()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        model, _, method = request.match_info["target"].rpartition(":")
        body = orjson.loads(await request.read())
        received = Received(
            method=method,
            model=model,
            version=request.match_info["version"],
            query=dict(request.query),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
        )
        self.requests.append(received)
        reply = self.replies.popleft() if self.replies else self._echo(received)
        if reply.status != 200 or reply.body is not None:
            return web.Response(
                status=reply.status,
                body=reply.body or b"",
                headers={"Content-Type": "application/json; charset=UTF-8", **reply.headers},
            )
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", **reply.headers})
        await response.prepare(request)
        for data in reply.chunks:
            if reply.delay_s:
                await asyncio.sleep(reply.delay_s)
            await response.write(data)
        await response.write_eof()
        return response

    @staticmethod
    def _echo(received: Received) -> Reply:
        contents = received.body.get("contents") or [{}]
        texts = [part["text"] for part in contents[-1].get("parts", []) if "text" in part]
        words = " ".join(texts).split(" ")
        if received.method == "countTokens":
            return Reply(body=orjson.dumps({"totalTokens": len(words)}))
        usage = {"promptTokenCount": 5, "candidatesTokenCount": len(words), "totalTokenCount": 5 + len(words)}
        if received.method == "generateContent":
            return Reply(body=orjson.dumps(text_event(" ".join(words), "STOP", usage)))
        events = [text_event(word if i == 0 else " " + word) for i, word in enumerate(words)]
        events.append(text_event("", "STOP", usage))
        return events_reply(*events)
