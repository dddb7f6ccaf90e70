"""An OpenAI chat stream read for a client that speaks OpenAI too: the byte relay.

Nearly every chunk of a stream is one piece of text for choice 0, in the layout OpenAI, vLLM,
llama.cpp and most others write, with the same fields before `choices` as the chunk before it.
Decoding such a chunk into an event and encoding it again gives back the same text: the relay
passes its text on as the upstream escaped it (`RawText`, for the OpenAI door to frame in its
own chunk, under its own id, model and fields) without decoding the SSE framing, the JSON or the
UTF-8. It reads those chunks with a handful of byte searches per chunk; every other chunk (the
first, tool calls, reasoning, a finish, usage, an error, anything in another layout) is read as
the translated path reads it (`ChunkParser`), so the client's stream is the same either way,
and so is what the gateway records of it.

A text chunk is recognised by its bytes: the fields before the text are those of the last chunk
read whole, the text holds no quote (an escaped quote, or another field in the delta, sends the
chunk the whole way, as `ChunkParser.plain` does) and is followed by the close of the choice and
nothing but a null usage and OpenAI's padding. The relay does not check that the upstream's
JSON is valid where it does not read it; a chunk read whole still is.
"""

from __future__ import annotations

import re

import orjson

from sluicegate.core.events import (
    Batch,
    Event,
    RawText,
    ReasoningDelta,
    RefusalDelta,
    TextDelta,
    ToolCallDelta,
)
from sluicegate.errors import GatewayError
from sluicegate.http.sse import SSEDecoder
from sluicegate.providers.openai.chunks import ChunkParser

_CHOICES = b'"choices":['
_TEXT_START = b'{"index":0,"delta":{"content":"'
_TEXT_CLOSE = b'"},"logprobs":null,"finish_reason":null}]'
_END = b"}\n\n"
# what may follow `choices` in a plain chunk: the null usage (include_usage) and OpenAI's padding
_TAIL = re.compile(rb'(?:,"usage":null)?(?:,"obfuscation":"[A-Za-z0-9+/=_-]*")?')


class ChatRelay:
    """One stream's reader: `feed` each network read; `close` at the end of the body."""

    __slots__ = ("_decoder", "_prefix", "_tail", "_text", "done", "parser", "texted")

    def __init__(self, name: str) -> None:
        self.parser = ChunkParser(name)  # the chunks read whole, as the translated path reads them
        self._decoder = SSEDecoder()
        self._prefix = b""  # `data: `, the last whole chunk's fields before `choices`, the text's start
        self._tail = b""  # the start of an event the next read completes
        self._text = bytearray()  # the answer's text as it went out, JSON-escaped (`transcript`)
        self.done = False  # `[DONE]` arrived
        self.texted = False  # some text went out as RawText

    def feed(self, data: bytes) -> tuple[Batch, GatewayError | None]:
        """The events of one network read, and the error that interrupted them (returned, so
        the events before it still reach the client)."""
        buffer = self._tail + data if self._tail else data
        if b"\r" in buffer:  # CR or CRLF line ends, as LF (a CR that ends the read may pair with an LF)
            keep_cr = buffer.endswith(b"\r")
            buffer = buffer.replace(b"\r\n", b"\n")
            buffer = buffer[:-1].replace(b"\r", b"\n") + b"\r" if keep_cr else buffer.replace(b"\r", b"\n")
        end = buffer.rfind(b"\n\n") + 2
        if end < 2:
            self._tail = buffer
            return [], None
        segment, self._tail = (buffer, b"") if end == len(buffer) else (buffer[:end], buffer[end:])
        batch: Batch = []
        at, size = 0, len(segment)
        while at < size:
            at = self._plain_run(segment, at, batch)
            if at >= size:
                break
            stop = segment.find(b"\n\n", at) + 2
            if stop < 2:  # stray line ends at the end
                break
            try:
                self._whole(segment[at:stop], batch)
            except GatewayError as exc:
                return batch, exc
            at = stop
            if self.done:
                self._tail = b""
                break
        return batch, None

    def close(self) -> list[Event]:
        """What the end owes (missing finishes, the usage), as the translated path owes it; a
        stream cut short is the upstream's error."""
        if self._tail and not self.done:
            batch, error = self.feed(b"\n\n")  # a last event not followed by a blank line
            if error is not None:
                raise error
            if batch:
                return batch + self.parser.close(self.done)
        return self.parser.close(self.done)

    def transcript(self) -> list[str]:
        """The answer's text in the order it went out (what the translated path notes event by
        event), decoded once at the end: for the access log, and for estimating usage when the
        upstream reported none (the client left, the stream failed)."""
        if not self._text:
            return []
        try:
            return [orjson.loads(b'"' + self._text + b'"')]
        except orjson.JSONDecodeError:
            return [self._text.decode("utf-8", errors="replace")]

    def _plain_run(self, segment: bytes, at: int, batch: Batch) -> int:
        """The plain text chunks from `at` on as one RawText; where the run ended."""
        prefix = self._prefix
        if not prefix or not segment.startswith(prefix, at):
            return at
        pieces: list[bytes] = []
        skip = len(prefix)
        while segment.startswith(prefix, at):
            start = at + skip
            close = segment.find(_TEXT_CLOSE, start)
            if close <= start or segment.find(b'"', start, close) >= 0:
                break  # no close, an empty text (the translated path sends none), or more than text
            after = close + len(_TEXT_CLOSE)
            if not segment.startswith(_END, after):
                tail = _TAIL.match(segment, after)
                after = tail.end() if tail is not None else after
                if not segment.startswith(_END, after):
                    break
            pieces.append(segment[start:close])
            at = after + len(_END)
        if pieces:
            self.parser.seen.add(0)
            self.texted = True
            self._text += b"".join(pieces)
            batch.append(RawText(pieces))
        return at

    def _whole(self, raw: bytes, batch: Batch) -> None:
        """One event read as the translated path reads it; its fields before `choices` become
        the layout the next plain chunks must have."""
        for sse in self._decoder.feed(raw):
            if sse.data == "[DONE]":
                self.done = True
                return
            events = self.parser.parse_text(sse.data)
            for event in events:
                kind = type(event)
                if kind is TextDelta or kind is ReasoningDelta or kind is RefusalDelta:
                    self._text += orjson.dumps(event.text)[1:-1]  # type: ignore[union-attr]
                elif kind is ToolCallDelta:
                    self._text += orjson.dumps((event.name or "") + event.arguments)[1:-1]  # type: ignore[union-attr]
            batch += events
            payload = sse.data.encode()
            choices = payload.find(_CHOICES)
            self._prefix = b"data: " + payload[:choices] + _CHOICES + _TEXT_START if choices > 0 else b""
