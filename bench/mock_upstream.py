"""A fast mock upstream that speaks OpenAI's exact chat-completions wire format.

It is written on raw asyncio + httptools (uvloop when installed) so that it is never the bottleneck
of a benchmark. Streams and delays are configurable per process (CLI flags) and per request, so one
process serves every scenario:

* model name containing ``c<chunks>-t<total_ms>`` (e.g. ``mock-c20-t1000``): 20 content chunks spread
  over 1000 ms; for non-streaming requests the answer comes after ``total_ms``;
* request-body extra fields ``mock_chunks`` / ``mock_total_ms`` override the model name.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import socket
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import httptools
import orjson

_MODEL_PARAMS = re.compile(r"(?:^|[-_/:])c(\d+)-t(\d+)(?:$|[-_])")
_WORDS = ("lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit", "sed", "do")
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}


@dataclass(frozen=True)
class MockParams:
    """How one answer is shaped: ``chunks`` content chunks spread evenly over ``total_ms``."""

    chunks: int = 20
    total_ms: float = 1000.0


def params_for(model: str, body: dict[str, Any], default: MockParams) -> MockParams:
    """Resolve per-request parameters: body fields win over the model name, which wins over CLI."""
    params = default
    match = _MODEL_PARAMS.search(model)
    if match:
        params = MockParams(chunks=int(match.group(1)), total_ms=float(match.group(2)))
    if "mock_chunks" in body:
        params = replace(params, chunks=max(0, int(body["mock_chunks"])))
    if "mock_total_ms" in body:
        params = replace(params, total_ms=max(0.0, float(body["mock_total_ms"])))
    return params


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def _prompt_tokens(body: dict[str, Any]) -> int:
    words = 0
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            words += len(content.split())
    return max(1, words)


def _word(i: int) -> str:
    return _WORDS[i % len(_WORDS)] + " "


def _response(
    status: int, body: bytes, content_type: bytes = b"application/json", keep_alive: bool = True
) -> bytes:
    head = (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n".encode()
        + b"content-type: "
        + content_type
        + b"\r\ncontent-length: "
        + str(len(body)).encode()
        + (b"\r\n\r\n" if keep_alive else b"\r\nconnection: close\r\n\r\n")
    )
    return head + body


def _error(status: int, message: str, keep_alive: bool = True) -> bytes:
    body = orjson.dumps(
        {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}}
    )
    return _response(status, body, keep_alive=keep_alive)


def _sse_frame(obj: Any) -> bytes:
    """One SSE event wrapped as one HTTP/1.1 chunked-transfer frame."""
    data = b"data: " + (obj if isinstance(obj, bytes) else orjson.dumps(obj)) + b"\n\n"
    return b"%x\r\n%s\r\n" % (len(data), data)


_STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
    b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n"
)


@dataclass
class _Request:
    method: str
    url: bytes
    body: bytes
    keep_alive: bool


class MockProtocol(asyncio.Protocol):
    """One HTTP/1.1 connection: requests are parsed by httptools and answered strictly in order."""

    def __init__(self, default: MockParams) -> None:
        self.default = default
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.queue: deque[_Request] = deque()
        self.task: asyncio.Task[None] | None = None
        self._url = b""
        self._body: list[bytes] = []

    # -- asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop transports are not subclasses
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self.transport is not None:
                self.transport.write(_error(400, "malformed HTTP request", keep_alive=False))
                self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.task is not None and not self.task.done():
            self.task.cancel()

    # -- httptools callbacks
    def on_message_begin(self) -> None:
        self._url = b""
        self._body = []

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        method = self.parser.get_method().decode()
        self.queue.append(_Request(method, self._url, b"".join(self._body), self.parser.should_keep_alive()))
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._drain())

    # -- request handling
    async def _drain(self) -> None:
        while self.queue and self.transport is not None:
            request = self.queue.popleft()
            await self._handle(request)
            if not request.keep_alive and self.transport is not None:
                self.transport.close()

    def _write(self, data: bytes) -> bool:
        if self.transport is None or self.transport.is_closing():
            return False
        self.transport.write(data)
        return True

    async def _handle(self, req: _Request) -> None:
        path = req.url.split(b"?", 1)[0]
        if path == b"/health" and req.method == "GET":
            self._write(_response(200, b'{"status":"ok"}', keep_alive=req.keep_alive))
        elif path == b"/v1/models" and req.method == "GET":
            listing = {
                "object": "list",
                "data": [{"id": "mock-model", "object": "model", "created": 0, "owned_by": "bench"}],
            }
            self._write(_response(200, orjson.dumps(listing), keep_alive=req.keep_alive))
        elif path == b"/v1/chat/completions":
            if req.method != "POST":
                self._write(_error(405, "use POST", keep_alive=req.keep_alive))
                return
            try:
                body = orjson.loads(req.body)
                if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
                    raise ValueError("messages must be a list")
            except (orjson.JSONDecodeError, ValueError) as exc:
                self._write(_error(400, f"invalid request body: {exc}", keep_alive=req.keep_alive))
                return
            model = str(body.get("model") or "mock-model")
            params = params_for(model, body, self.default)
            if body.get("stream"):
                options = body.get("stream_options") or {}
                await self._stream(model, params, _prompt_tokens(body), bool(options.get("include_usage")))
            else:
                await self._complete(model, params, _prompt_tokens(body), req.keep_alive)
        else:
            self._write(
                _error(404, f"no route for {path.decode(errors='replace')}", keep_alive=req.keep_alive)
            )

    async def _complete(self, model: str, params: MockParams, prompt_tokens: int, keep_alive: bool) -> None:
        if params.total_ms > 0:
            await asyncio.sleep(params.total_ms / 1000)
        answer = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": "".join(_word(i) for i in range(params.chunks)),
                        "refusal": None,
                    },
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": _usage(prompt_tokens, params.chunks),
            "system_fingerprint": "fp_bench",
        }
        self._write(_response(200, orjson.dumps(answer), keep_alive=keep_alive))

    async def _stream(self, model: str, params: MockParams, prompt_tokens: int, include_usage: bool) -> None:
        base: dict[str, Any] = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": "fp_bench",
        }
        if include_usage:
            base["usage"] = None  # OpenAI sends usage: null on every chunk but the last one

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            return _sse_frame({**base, "choices": [choice]})

        if not self._write(_STREAM_HEAD + chunk({"role": "assistant", "content": "", "refusal": None})):
            return
        loop = asyncio.get_running_loop()
        interval = params.total_ms / 1000 / params.chunks if params.chunks else 0.0
        due = loop.time()
        for i in range(params.chunks):
            if interval > 0:
                due += interval  # absolute schedule: no drift when the loop is busy
                await asyncio.sleep(max(0.0, due - loop.time()))
            if not self._write(chunk({"content": _word(i)})):
                return
        tail = chunk({}, "stop")
        if include_usage:
            tail += _sse_frame({**base, "choices": [], "usage": _usage(prompt_tokens, params.chunks)})
        self._write(tail + _sse_frame(b"[DONE]") + b"0\r\n\r\n")


async def start_mock(
    host: str = "127.0.0.1", port: int = 0, default: MockParams | None = None, reuse_port: bool = False
) -> asyncio.Server:
    """Start the mock on the running loop; ``port=0`` picks a free port (see ``server.sockets``)."""
    params = default or MockParams()
    loop = asyncio.get_running_loop()
    factory: Callable[[], MockProtocol] = lambda: MockProtocol(params)  # noqa: E731
    return await loop.create_server(factory, host, port, backlog=4096, reuse_port=reuse_port or None)


def bound_port(server: asyncio.Server) -> int:
    return int(server.sockets[0].getsockname()[1])


def raise_fd_limit() -> None:
    """Thousands of concurrent streams need more file descriptors than the default soft limit."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < want:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def install_uvloop() -> bool:
    try:
        import uvloop
    except ImportError:
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


async def _serve_forever(host: str, port: int, params: MockParams, reuse_port: bool) -> None:
    server = await start_mock(host, port, params, reuse_port=reuse_port)
    async with server:
        await server.serve_forever()


def _worker(host: str, port: int, params: MockParams, reuse_port: bool) -> None:
    install_uvloop()
    raise_fd_limit()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve_forever(host, port, params, reuse_port))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="OpenAI-compatible mock upstream for benchmarks")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8900)
    parser.add_argument("--chunks", type=int, default=20, help="content chunks per stream")
    parser.add_argument("--total-ms", type=float, default=1000.0, help="stream duration / non-stream delay")
    parser.add_argument("--workers", type=int, default=1, help="processes sharing the port (SO_REUSEPORT)")
    args = parser.parse_args(argv)
    params = MockParams(chunks=args.chunks, total_ms=args.total_ms)
    if args.workers <= 1:
        _worker(args.host, args.port, params, False)
        return
    children = []
    for _ in range(args.workers):
        pid = os.fork()
        if pid == 0:
            _worker(args.host, args.port, params, True)
            os._exit(0)
        children.append(pid)
    with contextlib.suppress(KeyboardInterrupt):
        for pid in children:
            os.waitpid(pid, 0)


if __name__ == "__main__":
    main()
