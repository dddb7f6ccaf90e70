"""The byte relay of an Anthropic Messages stream (providers/relay.py).

A text event is recognised by its bytes: `content_block_delta` with a `text_delta` and nothing
else, in the layout Anthropic writes; it is what `MessageStreamParser` reads as a lone TextDelta
(the block's index is the door's business: it numbers its own blocks). Every other event (the
message's start, block starts and stops, thinking, tool input, citations, the stop reason and
usage, errors, pings) is read whole.
"""

from __future__ import annotations

from sluicegate.core.events import Batch, Event
from sluicegate.http.sse import SSEDecoder
from sluicegate.providers.anthropic.stream import MessageStreamParser
from sluicegate.providers.http import loads_event
from sluicegate.providers.relay import StreamRelay

_EVENT = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":'
_TEXT = b',"delta":{"type":"text_delta","text":"'
_CLOSE = b'"}}\n\n'
_INDEX_DIGITS = 6  # at most this many digits of a block index between the two


class MessagesRelay(StreamRelay):
    """`feed` each network read; at the end of the body `close`."""

    __slots__ = ("_decoder", "name", "parser")

    def __init__(self, name: str, explain_refusals: bool) -> None:
        super().__init__()
        self.name = name
        self.parser = MessageStreamParser(name, explain_refusals=explain_refusals)
        self._decoder = SSEDecoder()

    def close(self) -> list[Event]:
        """What the end owes, as the translated path owes it (or the error of a cut stream)."""
        batch, error = self.flush()
        if error is not None:
            raise error
        return batch + self.parser.close()

    def _plain_run(self, segment: bytes, at: int, batch: Batch) -> int:
        if self.parser.done:
            return at  # nothing after message_stop is read
        pieces: list[bytes] = []
        while segment.startswith(_EVENT, at):
            digits = at + len(_EVENT)
            text = segment.find(_TEXT, digits, digits + _INDEX_DIGITS + len(_TEXT))
            if text <= digits or not segment[digits:text].isdigit():
                break
            start = text + len(_TEXT)
            close = segment.find(_CLOSE, start)
            if close <= start or segment.find(b'"', start, close) >= 0:
                break  # no close, an empty text (the parser makes nothing of it), or more than text
            pieces.append(segment[start:close])
            at = close + len(_CLOSE)
        if pieces:
            self._relayed(pieces, batch)
        return at

    def _whole(self, raw: bytes, batch: Batch) -> None:
        for sse in self._decoder.feed(raw):
            events: list[Event] = []
            self.parser.parse(loads_event(sse.data, self.name), events)
            self._noted(events)
            batch += events
