"""A local OpenAI-wire upstream that fails on purpose, for the fault-injection tests and the soak.

What it does to one attempt is a `Fault`, taken (in this order) from the request body's own
`fault` field (a client's unknown fields reach OpenAI upstreams unchanged), from the `script`
queue, or from the server's `default`. Written as text: `kind[:key=value,...]`, e.g.
`status:code=429,retry_after=3`, `reset:after=3`, `delay:seconds=2`.

    ok            a healthy answer: a role chunk, `chunks` content chunks, finish, usage, [DONE]
    status        an error status (`code`, default 500) with an OpenAI error body and an optional
                  Retry-After (`retry_after`)
    delay         waits `seconds` before the status line, then answers as `ok`
    stall         sends `after` content chunks, then nothing (until `seconds`, default 60)
    reset         sends `after` content chunks, then (0.2 s later, so they are read) resets the
                  TCP connection (RST)
    truncated     sends `after` content chunks, then half a chunk's JSON, and ends the body
    invalid_json  sends `after` content chunks, then an event whose data is not JSON
    no_done       a complete answer (finish reason and usage) that ends without [DONE]
    no_finish     sends `after` content chunks, then ends the body: no finish reason, no [DONE]

A request with `tools` is answered with a call instead: one text chunk (`w0 `), then a call of
its first tool whose arguments come in `chunks` pieces, finish `tool_calls` (a mid-stream
fault's `after` counts its text chunk, the call's opening and its pieces). A request whose last
message is the assistant's (a continuation, as vLLM's `continue_final_message` and llama.cpp's
server take it) is answered with the rest of that answer: what follows the assistant's text.

`refuse()` stops listening and drops open connections, answers under way included (they are
marked `killed`): connections are refused until `accept()`.
Every attempt is recorded (`attempts`): the fault, when it began and ended, and when the client
went away if it did (`cancelled_at`, `time.monotonic()` in this process).

Run alone: `python -m testsupport.fault_upstream --port 9000 [--default status:code=503]`.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
from aiohttp import web

KINDS = ("ok", "status", "delay", "stall", "reset", "truncated", "invalid_json", "no_done", "no_finish")
DONE = b"data: [DONE]\n\n"


@dataclass(frozen=True)
class Fault:
    kind: str = "ok"
    code: int = 500  # for `status`
    retry_after: str | None = None  # for `status`: the Retry-After header's value
    seconds: float = 60.0  # for `delay` (before the status line) and `stall` (how long)
    after: int = 2  # content chunks sent before a mid-stream fault
    chunks: int = 5  # content chunks of a whole answer
    gap_s: float = 0.0  # between chunks

    @classmethod
    def parse(cls, spec: str | dict[str, Any] | Fault) -> Fault:
        if isinstance(spec, Fault):
            return spec
        if isinstance(spec, dict):
            return cls(**spec)
        kind, _, rest = spec.partition(":")
        values: dict[str, Any] = {}
        for item in filter(None, rest.split(",")):
            key, _, value = item.partition("=")
            kind_of = cls.__dataclass_fields__[key].type
            values[key] = (
                value if "str" in str(kind_of) else (float(value) if "float" in str(kind_of) else int(value))
            )
        if kind not in KINDS:
            raise ValueError(f"unknown fault {kind!r}")
        return cls(kind, **values)

    def text(self) -> str:
        """The content a client receives before this fault (all of it for a whole answer)."""
        count = self.chunks if self.kind in ("ok", "delay", "no_done") else self.after
        return "".join(word(i) for i in range(count))


def word(i: int) -> str:
    return f"w{i} "


@dataclass
class Attempt:
    fault: Fault
    stream: bool
    model: str
    started_at: float
    ended_at: float | None = None
    cancelled_at: float | None = None  # the client closed the connection
    chunks_sent: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    tag: str | None = None  # the request body's `tag`, to match attempts to requests
    killed: bool = False  # cut by `refuse()` while under way
    body: dict[str, Any] = field(default_factory=dict)  # the request as it came


def _chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    body = {
        "id": "chatcmpl-fault",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "fault-model",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    return b"data: " + orjson.dumps(body) + b"\n\n"


ARGUMENTS = '{"city": "Paris", "unit": "celsius"}'


def _pieces(text: str, count: int) -> list[str]:
    size = max(1, -(-len(text) // max(1, count)))
    return [text[i : i + size] for i in range(0, len(text), size)]


def _deltas(body: dict[str, Any], fault: Fault) -> tuple[list[dict[str, Any]], str]:
    """The answer's content deltas (after the role chunk) and its finish reason; a continuation
    gets what follows the assistant's text."""
    messages = body.get("messages") or [{}]
    last = messages[-1]
    prefill = str(last.get("content") or "") if last.get("role") == "assistant" else ""
    tools = body.get("tools")
    text = word(0) if tools else "".join(word(i) for i in range(fault.chunks))
    rest = text[len(prefill) :] if text.startswith(prefill) else text
    deltas: list[dict[str, Any]] = [{"content": piece} for piece in _split_words(rest)]
    if not tools:
        return deltas, "stop"
    name = tools[0]["function"]["name"]
    call_id = f"call_{len(prefill)}_{id(body) % 10_000}"
    head = {"index": 0, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}
    deltas.append({"tool_calls": [head]})
    deltas += [{"tool_calls": [{"index": 0, "function": {"arguments": p}}]} for p in _pieces(ARGUMENTS, fault.chunks)]
    return deltas, "tool_calls"


def _split_words(text: str) -> list[str]:
    """`w2 w3 ` -> `w2 `, `w3 `; a leading space or a part of a word is its own piece."""
    pieces: list[str] = []
    for part in text.split(" ")[:-1] if text.endswith(" ") else text.split(" "):
        pieces.append(part + " ")
    if not text.endswith(" ") and pieces:
        pieces[-1] = pieces[-1][:-1]
    return [piece for piece in pieces if piece]


def _usage(completion: int) -> bytes:
    usage = {"prompt_tokens": 3, "completion_tokens": completion, "total_tokens": 3 + completion}
    body = {"id": "chatcmpl-fault", "object": "chat.completion.chunk", "created": 1, "model": "fault-model"}
    return b"data: " + orjson.dumps({**body, "choices": [], "usage": usage}) + b"\n\n"


def _whole(fault: Fault) -> bytes:
    return orjson.dumps(
        {
            "id": "chatcmpl-fault",
            "object": "chat.completion",
            "created": 1700000000,
            "model": "fault-model",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": fault.text()},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": 3,
                "completion_tokens": fault.chunks,
                "total_tokens": 3 + fault.chunks,
            },
        }
    )


class FaultUpstream:
    def __init__(self, default: Fault | str = "ok", port: int = 0) -> None:
        self.default = Fault.parse(default)
        self.script: deque[Fault] = deque()
        self.attempts: list[Attempt] = []
        self.port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True, name="fault-upstream")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # --- control, from any thread ------------------------------------------------------------

    def start(self) -> FaultUpstream:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fault upstream did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)

    def enqueue(self, *faults: Fault | str) -> None:
        self.script.extend(Fault.parse(f) for f in faults)

    def reset(self, default: Fault | str = "ok") -> None:
        self.default = Fault.parse(default)
        self.script.clear()
        self.attempts.clear()

    def refuse(self) -> None:
        """Stop listening and drop every open connection: new connections are refused."""
        self._call(self._refuse())

    def accept(self) -> None:
        self._call(self._accept())

    def wait_for(self, predicate: Any, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self):
                return True
            time.sleep(0.005)
        return bool(predicate(self))

    def _call(self, coro: Any) -> None:
        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    # --- the server ----------------------------------------------------------------------------

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        self._runner = web.AppRunner(app, handle_signals=False, handler_cancellation=True, access_log=None)
        loop.run_until_complete(self._runner.setup())
        loop.run_until_complete(self._accept())
        self._ready.set()
        loop.run_forever()

    async def _accept(self) -> None:
        assert self._runner is not None
        if self._site is not None:
            return
        self._site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await self._site.start()
        server = self._site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _refuse(self) -> None:
        assert self._runner is not None
        if self._site is not None:
            await self._site.stop()
            self._site = None
        server = self._runner.server
        if server is not None:
            for attempt in self.attempts:
                if attempt.ended_at is None:
                    attempt.killed = True
            for handler in server.connections:
                handler.force_close()

    def _fault_for(self, body: dict[str, Any]) -> Fault:
        sent = body.get("fault")
        if sent is not None:
            return Fault.parse(sent)
        if self.script:
            return self.script.popleft()
        return self.default

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        fault = self._fault_for(body)
        stream = bool(body.get("stream"))
        attempt = Attempt(
            fault, stream, str(body.get("model")), time.monotonic(), headers=dict(request.headers), body=body
        )
        tag = body.get("tag")
        attempt.tag = None if tag is None else str(tag)
        self.attempts.append(attempt)
        try:
            return await self._answer(request, fault, stream, attempt, body)
        except asyncio.CancelledError:
            attempt.cancelled_at = time.monotonic()
            raise
        except ConnectionError:  # the client (or `refuse()`) closed it while we wrote
            attempt.cancelled_at = time.monotonic()
            return web.Response(status=499)
        finally:
            attempt.ended_at = time.monotonic()

    async def _answer(
        self, request: web.Request, fault: Fault, stream: bool, attempt: Attempt, body: dict[str, Any]
    ) -> web.StreamResponse:
        if fault.kind == "status":
            error = {"error": {"message": f"injected {fault.code}", "type": "server_error", "code": None}}
            headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
            return web.json_response(error, status=fault.code, headers=headers)
        if fault.kind == "delay":
            await asyncio.sleep(fault.seconds)
        if not stream:
            return await self._whole_answer(request, fault)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(_chunk({"role": "assistant", "content": ""}))
        whole = fault.kind in ("ok", "delay", "no_done")
        deltas, finish = _deltas(body, fault)
        for delta in deltas if whole else deltas[: fault.after]:
            if fault.gap_s:
                await asyncio.sleep(fault.gap_s)
            await response.write(_chunk(delta))
            attempt.chunks_sent += 1
        if whole:
            await response.write(_chunk({}, finish) + _usage(len(deltas)))
            if fault.kind != "no_done":
                await response.write(DONE)
        elif fault.kind == "stall":
            await asyncio.sleep(fault.seconds)
        elif fault.kind == "reset":
            # a reset discards what the peer has not read yet: let it read the chunks first
            await asyncio.sleep(0.2)
            _reset(request)
            return response
        elif fault.kind == "truncated":
            await response.write(_chunk({"content": "cut"})[:40])
        elif fault.kind == "invalid_json":
            await response.write(b"data: {not json at all}\n\n" + _chunk({"content": "never"}))
        await response.write_eof()
        return response

    async def _whole_answer(self, request: web.Request, fault: Fault) -> web.StreamResponse:
        body = _whole(fault)
        if fault.kind in ("ok", "delay", "no_done", "no_finish"):
            return web.Response(body=body, content_type="application/json")
        if fault.kind == "invalid_json":
            return web.Response(body=b"{not json at all}", content_type="application/json")
        if fault.kind == "stall":
            await asyncio.sleep(fault.seconds)
            return web.Response(body=body, content_type="application/json")
        # reset / truncated: the status line and half the body, then the connection ends
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.content_length = len(body)
        await response.prepare(request)
        await response.write(body[: len(body) // 2])
        _reset(request)
        return response


def _reset(request: web.Request) -> None:
    """Close the connection with a TCP reset (SO_LINGER 0), as a crashed upstream would."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def with_fault(fault: Fault | str, **changes: Any) -> Fault:
    return replace(Fault.parse(fault), **changes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--default", default="ok")
    args = parser.parse_args()
    upstream = FaultUpstream(args.default, args.port).start()
    print(upstream.base_url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        upstream.stop()


if __name__ == "__main__":
    main()
