"""Server-Sent Events framing: an incremental decoder for upstream bytes and the encoder.

The decoder follows the WHATWG event-stream rules: lines end in CR, LF or CRLF (a CR at the
end of one network read may pair with an LF at the start of the next), lines starting with
`:` are comments, several `data:` lines join with newlines, and a blank line dispatches.
Splitting happens on bytes, so a UTF-8 character cut across reads is decoded whole.
"""

from __future__ import annotations

from dataclasses import dataclass

DONE = b"data: [DONE]\n\n"
KEEPALIVE = b": keep-alive\n\n"


@dataclass(slots=True)
class SSEEvent:
    data: str
    event: str = "message"
    id: str | None = None


def encode_data(payload: bytes) -> bytes:
    return b"data: " + payload + b"\n\n"


class SSEDecoder:
    __slots__ = ("_at_start", "_buffer", "_data", "_event", "_id", "_pending_cr", "comments")

    def __init__(self) -> None:
        self._buffer = b""
        self._at_start = True
        self._pending_cr = False
        self._data: list[str] = []
        self._event = ""
        self._id: str | None = None
        self.comments = 0

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Take the next bytes off the wire; return the events they complete."""
        if not chunk:
            return []  # an empty read must not forget a CR that may pair with the next LF
        if self._at_start:
            if len(chunk) < 3 and b"\xef\xbb\xbf".startswith(chunk):
                self._buffer += chunk  # maybe the start of a BOM
                return []
            self._at_start = False
            if self._buffer:
                chunk, self._buffer = self._buffer + chunk, b""
            if chunk.startswith(b"\xef\xbb\xbf"):
                chunk = chunk[3:]  # a stream may open with a UTF-8 BOM, which is not data
        if self._pending_cr and chunk.startswith(b"\n"):
            chunk = chunk[1:]
        self._pending_cr = False
        buffer = self._buffer + chunk if self._buffer else chunk
        events: list[SSEEvent] = []
        if b"\r" not in buffer:  # the common LF-only framing: split once, no per-line search
            lines = buffer.split(b"\n")
            self._buffer = lines.pop()
            for line in lines:
                self._line(line, events)
            return events
        start = 0
        length = len(buffer)
        while start < length:
            lf = buffer.find(b"\n", start)
            cr = buffer.find(b"\r", start, lf if lf != -1 else length)
            if cr != -1:
                end, nxt = cr, cr + 1
                if nxt < length and buffer[nxt] == 0x0A:
                    nxt += 1
                elif nxt == length:
                    self._pending_cr = True
            elif lf != -1:
                end, nxt = lf, lf + 1
            else:
                break
            self._line(buffer[start:end], events)
            start = nxt
        self._buffer = buffer[start:]
        return events

    def flush(self) -> list[SSEEvent]:
        """End of stream: a last event not followed by a blank line is still dispatched."""
        events: list[SSEEvent] = []
        if self._buffer:
            self._line(self._buffer, events)
            self._buffer = b""
        self._line(b"", events)
        return events

    def _line(self, raw: bytes, events: list[SSEEvent]) -> None:
        if not raw:
            if self._data:
                events.append(SSEEvent("\n".join(self._data), self._event or "message", self._id))
            self._data = []
            self._event = ""
            return
        if raw.startswith(b"data: "):  # nearly every line of an LLM stream
            self._data.append(raw[6:].decode("utf-8", errors="replace"))
            return
        line = raw.decode("utf-8", errors="replace")
        if line[0] == ":":
            self.comments += 1
            return
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._id = value
