"""Canonical events -> Anthropic's Messages stream, as bytes.

The sequence is Anthropic's, each event framed `event: NAME` + `data: {...}`:

    message_start, ping,
    (content_block_start, content_block_delta*, content_block_stop)*,
    message_delta, message_stop            -- or, on a failure after the first byte, `error`

One block is open at a time. A block closes when the kind of content changes (text, thinking,
a tool call), when a new tool call starts, or when the upstream closed its own (`BlockEnd`).
The constant bytes of each delta are built when its block opens, so an event costs one small
orjson call for its text.
"""

from __future__ import annotations

from typing import Any

import orjson

from sluicegate.api.messages.errors import error_event
from sluicegate.api.messages.response import estimate_tokens, new_id, stop_reason, usage_fields
from sluicegate.core.events import (
    Batch,
    BlockEnd,
    Event,
    Finish,
    RawText,
    ReasoningDelta,
    RefusalDelta,
    Seam,
    Started,
    TextDelta,
    ToolCallDelta,
    Usage,
    seams_field,
)
from sluicegate.errors import GatewayError

PING = b'event: ping\ndata: {"type":"ping"}\n\n'
MESSAGE_STOP = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
_START = b'event: content_block_start\ndata: {"type":"content_block_start","index":'
_STOP = b'event: content_block_stop\ndata: {"type":"content_block_stop","index":'
_DELTA = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":'
_END = b"}}\n\n"
_TEXT_BLOCK = b'{"type":"text","text":""}'
_THINKING_BLOCK = b'{"type":"thinking","thinking":"","signature":""}'

TEXT, THINKING, TOOL = 1, 2, 3  # the kinds of open block


class MessageStreamEncoder:
    __slots__ = (
        "_chars",
        "_delta",
        "_index",
        "_message_id",
        "_model",
        "_open",
        "_prompt_tokens",
        "_seams",
        "_signed",
        "_stop_reason",
        "_stop_sequence",
        "_tool",
        "_tool_blocks",
        "_usage",
    )

    def __init__(self, message_id: str, model: str) -> None:
        self._message_id = message_id
        self._model = model
        self._index = -1  # the last block opened
        self._open = 0  # the kind of the open block, 0 when none is
        self._delta = b""  # `..."index":N,"delta":` of the open block
        self._tool = -1  # the canonical index of the open tool call
        self._tool_blocks: dict[int, int] = {}  # tool call index -> its block's index
        self._signed = False  # the open thinking block has its signature
        self._chars = 0  # text sent, to estimate output tokens if the upstream reports none
        self._stop_reason: str | None = None
        self._stop_sequence: str | None = None
        self._usage: Usage | None = None
        self._prompt_tokens: int | None = None
        self._seams: list[Seam] = []  # mid-stream fail-overs: named in `message_delta`

    def open(self, started: Started) -> bytes:
        """`message_start` and a `ping`, sent when the provider commits, before any token."""
        self._prompt_tokens = started.prompt_tokens
        message: dict[str, Any] = {
            "id": self._message_id,
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": started.prompt_tokens or 0, "output_tokens": 0},
        }
        start = orjson.dumps({"type": "message_start", "message": message})
        return b"event: message_start\ndata: " + start + b"\n\n" + PING

    def keepalive(self) -> bytes:
        """What to send while the model is silent: Anthropic's own `ping` event. The periodic
        keep-alive of the serving path calls this."""
        return PING

    def encode_batch(self, batch: Batch) -> bytes:
        if len(batch) == 1:
            return self.encode(batch[0])
        return b"".join([self.encode(event) for event in batch])

    def encode(self, event: Event) -> bytes:
        kind = type(event)
        if kind is TextDelta or kind is RefusalDelta:
            return self._text(event.text)  # type: ignore[union-attr]
        if kind is RawText:
            return self._raw_text(event.pieces)  # type: ignore[union-attr]
        if kind is ToolCallDelta:
            return self._tool_call(event)  # type: ignore[arg-type]
        if kind is ReasoningDelta:
            return self._reasoning(event)  # type: ignore[arg-type]
        if kind is BlockEnd:
            return self._close_block()
        if kind is Finish:
            finish: Finish = event  # type: ignore[assignment]
            self._stop_reason = stop_reason(
                finish.reason, finish.native, finish.stop_sequence, bool(self._tool_blocks)
            )
            self._stop_sequence = finish.stop_sequence if self._stop_reason == "stop_sequence" else None
        elif kind is Usage:
            self._usage = event  # type: ignore[assignment]
        elif kind is Seam:
            self._seams.append(event)  # type: ignore[arg-type]
        return b""  # Started, Metadata, Passthrough: nothing Anthropic's stream carries

    def _text(self, text: str) -> bytes:
        if not text:
            return b""
        self._chars += len(text)
        opening = b"" if self._open == TEXT else self._open_block(TEXT, _TEXT_BLOCK)
        return opening + self._delta + b'{"type":"text_delta","text":' + orjson.dumps(text) + _END

    def _raw_text(self, pieces: list[bytes]) -> bytes:
        """Text pieces as an Anthropic upstream escaped them (the byte relay): `_text`'s events."""
        self._chars += sum(map(len, pieces))
        opening = b"" if self._open == TEXT else self._open_block(TEXT, _TEXT_BLOCK)
        head = self._delta + b'{"type":"text_delta","text":"'
        tail = b'"' + _END
        return opening + head + (tail + head).join(pieces) + tail

    def _reasoning(self, event: ReasoningDelta) -> bytes:
        if event.redacted is not None:
            block = orjson.dumps({"type": "redacted_thinking", "data": event.redacted})
            return self._open_block(THINKING, block) + self._close_block()
        out = b""
        if self._open != THINKING or (self._signed and event.text):
            out = self._open_block(THINKING, _THINKING_BLOCK)
        if event.text:
            self._chars += len(event.text)
            out += self._delta + b'{"type":"thinking_delta","thinking":' + orjson.dumps(event.text) + _END
        if event.signature:
            self._signed = True
            out += (
                self._delta + b'{"type":"signature_delta","signature":' + orjson.dumps(event.signature) + _END
            )
        return out

    def _tool_call(self, event: ToolCallDelta) -> bytes:
        out = b""
        delta = self._delta
        if self._open != TOOL or event.index != self._tool:
            earlier = self._tool_blocks.get(event.index)
            if earlier is not None:
                # A fragment of a call whose block is already closed (calls streamed interleaved,
                # which OpenAI-compatible servers do not do): it joins its own block by index.
                delta = _DELTA + str(earlier).encode() + b',"delta":'
            else:
                block: dict[str, Any] = {
                    "type": "tool_use",
                    "id": event.id or new_id("toolu_"),
                    "name": event.name or "",
                    "input": {},
                }
                out = self._open_block(TOOL, orjson.dumps(block))
                self._tool = event.index
                self._tool_blocks[event.index] = self._index
                delta = self._delta
        if event.arguments:
            self._chars += len(event.arguments)
            out += (
                delta + b'{"type":"input_json_delta","partial_json":' + orjson.dumps(event.arguments) + _END
            )
        return out

    def _open_block(self, kind: int, block: bytes) -> bytes:
        closing = self._close_block()
        self._index += 1
        self._open = kind
        self._signed = False
        index = str(self._index).encode()
        self._delta = _DELTA + index + b',"delta":'
        return closing + _START + index + b',"content_block":' + block + b"}\n\n"

    def _close_block(self) -> bytes:
        if not self._open:
            return b""
        self._open = 0
        return _STOP + str(self._index).encode() + b"}\n\n"

    def close(self) -> bytes:
        """The normal end: the open block's stop, `message_delta` with the stop reason and
        usage, and `message_stop`."""
        reason = self._stop_reason or stop_reason(None, None, None, bool(self._tool_blocks))
        usage: dict[str, int]
        if self._usage is not None:
            usage = usage_fields(self._usage)
        else:
            usage = {"output_tokens": estimate_tokens(self._chars)}
            if self._prompt_tokens is not None:
                usage["input_tokens"] = self._prompt_tokens
        delta: dict[str, Any] = {
            "type": "message_delta",
            "delta": {"stop_reason": reason, "stop_sequence": self._stop_sequence},
            "usage": usage,
        }
        if self._seams:  # an extension field the SDK keeps: where the answer changed deployment
            delta["sluicegate"] = seams_field(self._seams)
        return (
            self._close_block()
            + b"event: message_delta\ndata: "
            + orjson.dumps(delta)
            + b"\n\n"
            + MESSAGE_STOP
        )

    def fail(self, error: GatewayError) -> bytes:
        """A failure after the first byte: Anthropic's `error` event, and nothing after it."""
        return error_event(error)
