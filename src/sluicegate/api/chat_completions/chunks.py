"""Canonical events -> OpenAI `chat.completion.chunk` bytes.

The constant part of every chunk (id, object, created, model, and the upstream's
`system_fingerprint` / `service_tier` once known) is serialised once per stream; each event
then costs one small orjson call. Field layout follows OpenAI's own chunks.
"""

from __future__ import annotations

from typing import Any

import orjson

from sluicegate.core.events import (
    Batch,
    Event,
    Finish,
    Metadata,
    Passthrough,
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
from sluicegate.http.sse import DONE, encode_data

_TEXT_OPEN = b'{"index":0,"delta":{"content":'
_TEXT_CLOSE = b'},"logprobs":null,"finish_reason":null}'
_RAW_OPEN = _TEXT_OPEN + b'"'  # a text piece already escaped (RawText) goes between these
_RAW_CLOSE = b'"' + _TEXT_CLOSE


class ChunkEncoder:
    __slots__ = (
        "_head",
        "_prefix",
        "_role_pending",
        "_seams",
        "_started",
        "_suffix",
        "include_usage",
        "usage",
    )

    def __init__(self, completion_id: str, created: int, model: str, include_usage: bool) -> None:
        self._head: dict[str, Any] = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
        }
        self._prefix = b""
        self._set_prefix()
        self._suffix = b'],"usage":null}\n\n' if include_usage else b"]}\n\n"
        self._started: set[int] = set()
        self._role_pending = False
        self._seams: list[Seam] = []  # mid-stream fail-overs: named in the finish chunk
        self.include_usage = include_usage
        self.usage: Usage | None = None

    def _set_prefix(self) -> None:
        self._prefix = b"data: " + orjson.dumps(self._head)[:-1] + b',"choices":['

    def _chunk(
        self,
        choice: int,
        delta: dict[str, Any],
        finish_reason: str | None = None,
        logprobs: Any = None,
        extra: dict[str, Any] | None = None,
    ) -> bytes:
        body = {"index": choice, "delta": delta, "logprobs": logprobs, "finish_reason": finish_reason}
        if extra:
            body.update(extra)
        return self._prefix + orjson.dumps(body) + self._suffix

    def start(self, choice: int = 0, content: str | None = "") -> bytes:
        """The role chunk that opens a choice, as OpenAI sends it before any content:
        `content: ""` before text, `content: null` before tool calls."""
        if choice in self._started:
            return b""
        self._started.add(choice)
        return self._chunk(choice, {"role": "assistant", "content": content})

    def open(self, started: Started) -> bytes:
        if started.metadata_pending:
            # the upstream's first chunk (and its system_fingerprint) is still to come: the role
            # chunk goes with it, so every chunk of the stream carries the same fingerprint
            self._role_pending = True
            return b""
        return self.start(0, None if started.calls_first else "")

    def encode(self, event: Event) -> bytes:
        kind = type(event)
        if kind is TextDelta:
            text: TextDelta = event  # type: ignore[assignment]
            if text.choice == 0 and text.logprobs is None and 0 in self._started:
                # nearly every chunk: what `_chunk` writes, with only the text to serialise
                return self._prefix + _TEXT_OPEN + orjson.dumps(text.text) + _TEXT_CLOSE + self._suffix
            logprobs = {"content": text.logprobs, "refusal": None} if text.logprobs is not None else None
            return self.start(text.choice) + self._chunk(text.choice, {"content": text.text}, None, logprobs)
        if kind is RawText:  # text chunks of an upstream that writes OpenAI's: in this stream's chunks
            opening = self.start(0) if 0 not in self._started else b""
            head, tail = self._prefix + _RAW_OPEN, _RAW_CLOSE + self._suffix
            return opening + head + (tail + head).join(event.pieces) + tail  # type: ignore[union-attr]
        if kind is Usage:
            self.usage = event  # type: ignore[assignment]
            return b""
        if kind is Started:
            return b""  # the role chunk that opens choice 0 is already out
        if kind is Metadata:
            return self._metadata(event)  # type: ignore[arg-type]
        choice: int = getattr(event, "choice", 0)
        if kind is ToolCallDelta:
            delta: dict[str, Any] = {"tool_calls": [_tool_call(event)]}  # type: ignore[arg-type]
            if choice not in self._started:  # a choice that opens with a call: one chunk, as OpenAI's
                self._started.add(choice)
                delta = {"role": "assistant", "content": None, **delta}
            return self._chunk(choice, delta)
        opening = self.start(choice)
        if kind is Finish:
            finish = self._chunk(choice, {}, event.reason)  # type: ignore[union-attr]
            if self._seams and choice == 0:
                finish = self._with_seams(finish)
            return opening + finish
        if kind is ReasoningDelta:
            if not event.text:  # type: ignore[union-attr]
                return opening  # a thinking signature: nothing OpenAI's chunks can carry
            return opening + self._chunk(choice, {"reasoning_content": event.text})  # type: ignore[union-attr]
        if kind is RefusalDelta:
            refusal: RefusalDelta = event  # type: ignore[assignment]
            logprobs = {"content": None, "refusal": refusal.logprobs} if refusal.logprobs is not None else None
            return opening + self._chunk(choice, {"refusal": refusal.text}, None, logprobs)
        if kind is Passthrough:
            passthrough: Passthrough = event  # type: ignore[assignment]
            return opening + self._chunk(choice, dict(passthrough.delta), None, None, passthrough.choice_fields)
        if kind is Seam:
            self._seams.append(event)  # type: ignore[arg-type]
        return opening  # BlockEnd: OpenAI chunks have no blocks

    def _with_seams(self, chunk: bytes) -> bytes:
        """The chunk with the `sluicegate` extension object naming where the answer passed from
        one deployment to the next (SDKs keep unknown top-level fields of a chunk)."""
        extra = b',"sluicegate":' + orjson.dumps(seams_field(self._seams)) + b"}\n\n"
        return chunk[: -len(b"}\n\n")] + extra

    def _metadata(self, meta: Metadata) -> bytes:
        if meta.system_fingerprint is not None:
            self._head["system_fingerprint"] = meta.system_fingerprint
        if meta.service_tier is not None:
            self._head["service_tier"] = meta.service_tier
        self._set_prefix()
        return b""

    def encode_batch(self, batch: Batch) -> bytes:
        if self._role_pending:
            return self._opening(batch)
        if len(batch) == 1:
            return self.encode(batch[0])
        return b"".join([self.encode(event) for event in batch])

    def _opening(self, batch: Batch) -> bytes:
        """The held role chunk, after the metadata the batch brings, then the batch."""
        if all(type(event) is Started for event in batch):
            return b""
        self._role_pending = False
        for event in batch:
            if type(event) is Metadata:
                self._metadata(event)
        return self.start(0) + b"".join([self.encode(event) for event in batch])

    def usage_chunk(self) -> bytes:
        """The closing `choices: []` chunk with usage, when the client asked for it."""
        if not self.include_usage or self.usage is None:
            return b""
        return self._prefix + b'],"usage":' + orjson.dumps(self.usage.to_dict()) + b"}\n\n"

    def close(self) -> bytes:
        opening = self.start(0) if self._role_pending else b""  # an answer with no events at all
        self._role_pending = False
        return opening + self.usage_chunk() + DONE

    def fail(self, error: GatewayError) -> bytes:
        opening = self.start(0) if self._role_pending else b""  # a stream still opens as OpenAI's do
        self._role_pending = False
        return opening + encode_data(error.to_json()) + DONE


def _tool_call(event: ToolCallDelta) -> dict[str, Any]:
    call: dict[str, Any] = {"index": event.index}
    function: dict[str, Any] = {}
    if event.id is not None:
        call["id"] = event.id
        call["type"] = "function"
    if event.name is not None:
        function["name"] = event.name
    function["arguments"] = event.arguments
    call["function"] = function
    if event.extra:
        call.update(event.extra)
    return call
