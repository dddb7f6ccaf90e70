"""A raw socket server answering chat completions in OpenAI's stream format, deciding exactly
which bytes arrive with the status line: aiohttp's own server would send the headers in a
write of their own. For the tests of what goes out with the start of a stream, and when."""

from __future__ import annotations

import asyncio

from tests.support.openai_upstream import chunk, sse

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
USAGE = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [],
         "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}  # fmt: skip


def http_chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


ANSWER = b"".join(
    [chunk(role="assistant", content=""), chunk("Xin"), chunk(" chào"), chunk(finish="stop"), sse(USAGE)]
) + sse(b"[DONE]")


class RawUpstream:
    """Answers one request with `with_status` in the same write as its status line; the rest
    of the body once `go` is set."""

    def __init__(self, with_status: bytes, rest: bytes) -> None:
        self.with_status = with_status
        self.rest = rest
        self.go = asyncio.Event()
        self.port = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> RawUpstream:
        self._server = await asyncio.start_server(self._answer, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
        )
        await reader.readexactly(length)
        writer.write(HEAD + (http_chunk(self.with_status) if self.with_status else b""))
        await self.go.wait()
        writer.write((http_chunk(self.rest) if self.rest else b"") + b"0\r\n\r\n")
        await writer.drain()
        writer.close()
