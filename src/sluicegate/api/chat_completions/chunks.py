"""Canonical events -> OpenAI `chat.completion.chunk` bytes.

The constant part of every chunk (id, object, created, model) is serialised once per stream;
each event then costs one small orjson call. Field layout follows OpenAI's own chunks.
"""

from __future__ import annotations

from typing import Any

import orjson

from sluicegate.core.events import (
    Batch,
    Event,
    Finish,
    ReasoningDelta,
    Started,
    TextDelta,
    ToolCallDelta,
    Usage,
)


class ChunkEncoder:
    __slots__ = ("_prefix", "_started", "_suffix", "include_usage", "usage")

    def __init__(self, completion_id: str, created: int, model: str, include_usage: bool) -> None:
        head = orjson.dumps(
            {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model}
        )
        self._prefix = b"data: " + head[:-1] + b',"choices":['
        self._suffix = b'],"usage":null}\n\n' if include_usage else b"]}\n\n"
        self._started: set[int] = set()
        self.include_usage = include_usage
        self.usage: Usage | None = None

    def _chunk(self, choice: int, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        body = {"index": choice, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return self._prefix + orjson.dumps(body) + self._suffix

    def start(self, choice: int = 0) -> bytes:
        """The role chunk that opens a choice, as OpenAI sends it before any content."""
        if choice in self._started:
            return b""
        self._started.add(choice)
        return self._chunk(choice, {"role": "assistant", "content": ""})

    def encode(self, event: Event) -> bytes:
        if isinstance(event, Usage):
            self.usage = event
            return b""
        if isinstance(event, Started):
            return b""  # the role chunk that opens choice 0 is already out
        opening = self.start(event.choice)
        if isinstance(event, TextDelta):
            return opening + self._chunk(event.choice, {"content": event.text})
        if isinstance(event, Finish):
            return opening + self._chunk(event.choice, {}, event.reason)
        if isinstance(event, ToolCallDelta):
            call: dict[str, Any] = {"index": event.index}
            function: dict[str, Any] = {}
            if event.id is not None:
                call["id"] = event.id
                call["type"] = "function"
            if event.name is not None:
                function["name"] = event.name
            function["arguments"] = event.arguments
            call["function"] = function
            return opening + self._chunk(event.choice, {"tool_calls": [call]})
        if isinstance(event, ReasoningDelta):
            return opening + self._chunk(event.choice, {"reasoning_content": event.text})
        return opening

    def encode_batch(self, batch: Batch) -> bytes:
        if len(batch) == 1:
            return self.encode(batch[0])
        return b"".join([self.encode(event) for event in batch])

    def usage_chunk(self) -> bytes:
        """The closing `choices: []` chunk with usage, when the client asked for it."""
        if not self.include_usage or self.usage is None:
            return b""
        return self._prefix + b'],"usage":' + orjson.dumps(self.usage.to_dict()) + b"}\n\n"
