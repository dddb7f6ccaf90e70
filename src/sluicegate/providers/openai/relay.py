"""The byte relay of an OpenAI chat stream (providers/relay.py).

A text chunk is recognised by its bytes: the fields before `choices` are those of the last chunk
read whole (so it brings no new metadata, usage or error), then one piece of text for choice 0 in
the layout OpenAI, vLLM, llama.cpp and most servers write, followed by nothing but a null usage and
OpenAI's padding. Such a chunk is what `ChunkParser.plain` reads as a lone TextDelta.
"""

from __future__ import annotations

import re

from sluicegate.core.events import Batch, Event
from sluicegate.http.sse import SSEDecoder
from sluicegate.providers.openai.chunks import ChunkParser
from sluicegate.providers.relay import StreamRelay

_CHOICES = b'"choices":['
_TEXT_START = b'{"index":0,"delta":{"content":"'
_TEXT_CLOSE = b'"},"logprobs":null,"finish_reason":null}]'
_END = b"}\n\n"
# what may follow `choices` in a plain chunk: the null usage (include_usage) and OpenAI's padding
_TAIL = re.compile(rb'(?:,"usage":null)?(?:,"obfuscation":"[A-Za-z0-9+/=_-]*")?')


class ChatRelay(StreamRelay):
    """`feed` each network read; `close` at the end of the body."""

    __slots__ = ("_decoder", "_prefix", "parser")

    def __init__(self, name: str) -> None:
        super().__init__()
        self.parser = ChunkParser(name)  # the chunks read whole, as the translated path reads them
        self._decoder = SSEDecoder()
        self._prefix = b""  # `data: `, the last whole chunk's fields before `choices`, the text's start

    def close(self) -> list[Event]:
        """What the end owes (missing finishes, the usage), as the translated path owes it; a
        stream cut short is the upstream's error."""
        batch, error = self.flush()
        if error is not None:
            raise error
        return batch + self.parser.close(self.done)

    def _plain_run(self, segment: bytes, at: int, batch: Batch) -> int:
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
            self._relayed(pieces, batch)
        return at

    def _whole(self, raw: bytes, batch: Batch) -> None:
        """Its fields before `choices` become the layout the next text chunks must have."""
        for sse in self._decoder.feed(raw):
            if sse.data == "[DONE]":
                self.done = True
                return
            events = self.parser.parse_text(sse.data)
            self._noted(events)
            batch += events
            payload = sse.data.encode()
            choices = payload.find(_CHOICES)
            self._prefix = b"data: " + payload[:choices] + _CHOICES + _TEXT_START if choices > 0 else b""
