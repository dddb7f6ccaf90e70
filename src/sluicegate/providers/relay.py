"""The byte relay's reading of an upstream's stream, whatever its wire format.

When the client speaks the upstream's wire format, most of a stream's events are pieces of text
that decoding into canonical events and encoding again would give back unchanged. A relay finds
the events at the boundaries of the network reads, recognises those text events by their bytes
(the format's own `_plain_run`) and passes their text on undecoded (`RawText`, a JSON string body
as the upstream escaped it, which the door writes into its own event); every other event is read
as the translated path reads it (`_whole`), so the client's stream is the same either way, and so
is what the gateway records of it. A text event's text must hold no quote: an escaped quote, or
another field after the text, sends the event the whole way. The relay does not check that the
upstream's JSON is valid where it does not read it; an event read whole still is.
"""

from __future__ import annotations

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


class StreamRelay:
    """One stream's reader: `feed` each network read. A format gives `_plain_run` and `_whole`."""

    __slots__ = ("_tail", "_text", "done", "texted")

    def __init__(self) -> None:
        self._tail = b""  # the start of an event the next read completes
        self._text = bytearray()  # the answer's text as it went out, JSON-escaped (`transcript`)
        self.done = False  # the stream's terminator arrived: what follows is not read
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

    def flush(self) -> tuple[Batch, GatewayError | None]:
        """The end of the body: a last event not followed by a blank line is still read."""
        if not self._tail or self.done:
            return [], None
        return self.feed(b"\n\n")

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

    def _relayed(self, pieces: list[bytes], batch: Batch) -> None:
        self.texted = True
        self._text += b"".join(pieces)
        batch.append(RawText(pieces))

    def _noted(self, events: list[Event]) -> None:
        """The text of events read whole, kept (escaped again) in the transcript's order."""
        for event in events:
            kind = type(event)
            if kind is TextDelta or kind is ReasoningDelta or kind is RefusalDelta:
                self._text += orjson.dumps(event.text)[1:-1]  # type: ignore[union-attr]
            elif kind is ToolCallDelta:
                self._text += orjson.dumps((event.name or "") + event.arguments)[1:-1]  # type: ignore[union-attr]

    def _plain_run(self, segment: bytes, at: int, batch: Batch) -> int:
        """The text events from `at` on, appended as one RawText; where the run ended."""
        raise NotImplementedError

    def _whole(self, raw: bytes, batch: Batch) -> None:
        """One event (its lines and blank line), read as the translated path reads it."""
        raise NotImplementedError
