"""Anthropic Messages stream events -> canonical events.

The event types: `message_start` (id, input usage; rarely whole content blocks already, as in
programmatic tool calling), `content_block_start` / `_delta` / `_stop`, `message_delta` (stop
reason, final usage), `message_stop`, `ping`, `error`. Tool calls get one canonical index each,
in the order their blocks start; a `tool_use` whose input never streams (no arguments, or given
whole in the block's start) gets that input as its arguments when the block stops, so a client
always receives valid JSON.

Blocks a client of OpenAI's format cannot act on are skipped: server tools the upstream ran
itself (`server_tool_use`, `web_search_tool_result`, `code_execution_tool_result`, MCP blocks...),
`compaction` and `fallback` markers, and citation deltas. Their outcome reaches the client in the
text blocks that follow them.

A refusal's `stop_details.explanation` becomes the answer's `refusal` text, OpenAI's place for it
(not for a client of Anthropic's own format, whose answer has no such text: `explain_refusals`).
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

from sluicegate.core.events import (
    BlockEnd,
    Event,
    Finish,
    Metadata,
    ReasoningDelta,
    RefusalDelta,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from sluicegate.errors import ServiceUnavailableError, UpstreamError
from sluicegate.providers.error_text import mid_stream_error

log = logging.getLogger("sluicegate.providers")
# the error types of a mid-stream event whose message is about the client's request
_CLIENT_ERRORS = frozenset({"invalid_request_error", "request_too_large"})

_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
_USAGE_KEYS = ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens", "output_tokens")


def finish(stop_reason: Any, stop_sequence: Any, called: bool) -> Finish:
    """Anthropic's stop reason in OpenAI's enum; `tool_use` without a call the client can
    answer (only server tools ran) is a plain stop. The native reason rides along."""
    native = stop_reason if isinstance(stop_reason, str) else None
    reason = _FINISH.get(native or "", "stop")
    if reason == "tool_calls" and not called:
        reason = "stop"
    sequence = stop_sequence if isinstance(stop_sequence, str) else None
    return Finish(reason, 0, stop_sequence=sequence, native=native)


def _count(raw: dict[str, Any], key: str) -> int:
    value = raw.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def usage(raw: dict[str, Any]) -> Usage:
    """Anthropic usage in OpenAI's terms: the prompt counts cache reads and cache writes too."""
    cached = _count(raw, "cache_read_input_tokens")
    written = _count(raw, "cache_creation_input_tokens")
    details: dict[str, Any] = {"prompt_tokens_details": {"cached_tokens": cached}}
    output_details = raw.get("output_tokens_details")
    thinking = _count(output_details, "thinking_tokens") if isinstance(output_details, dict) else 0
    if thinking:
        details["completion_tokens_details"] = {"reasoning_tokens": thinking}
    return Usage(
        prompt_tokens=_count(raw, "input_tokens") + cached + written,
        completion_tokens=_count(raw, "output_tokens"),
        details=details,
        cached_tokens=cached,
        cache_creation_tokens=written,
        reasoning_tokens=thinking,
    )


class _Block:
    __slots__ = ("call", "input", "kind", "streamed")

    def __init__(self, kind: str, call: int = -1, input: Any = None) -> None:
        self.kind = kind  # text | thinking | tool | skip
        self.call = call  # the canonical tool-call index
        self.input = input  # a tool_use's input as its start gave it
        self.streamed = False  # arguments arrived as input_json_delta fragments


_SKIP = _Block("skip")


class MessageStreamParser:
    """Stateful: the open blocks, the tool calls so far, the stop reason and the usage."""

    __slots__ = ("_blocks", "_calls", "_explain", "_explanation", "_stop", "_usage", "done", "name")

    def __init__(self, name: str = "upstream", explain_refusals: bool = True) -> None:
        self.name = name
        self._explain = explain_refusals
        self._blocks: dict[Any, _Block] = {}  # the upstream's block index -> its state
        self._calls = 0
        self._usage: dict[str, Any] = {}
        self._stop: tuple[Any, Any] | None = None  # (stop_reason, stop_sequence) once known
        self._explanation: str | None = None  # why the upstream refused, when it said
        self.done = False  # message_stop seen

    def parse(self, event: Any, events: list[Event]) -> None:
        """Append the canonical events of one decoded stream event."""
        if not isinstance(event, dict):
            raise UpstreamError(
                f"The upstream of `{self.name}` sent a stream event that is not a JSON object."
            )
        if self.done:
            return  # nothing follows message_stop in one answer
        kind = event.get("type")
        if kind == "content_block_delta":
            self._delta(event, events)
        elif kind == "content_block_start":
            block = event.get("content_block")
            if isinstance(block, dict):
                self._start(event.get("index"), block, events)
        elif kind == "content_block_stop":
            self._stop_block(self._blocks.pop(event.get("index"), _SKIP), events)
        elif kind == "message_delta":
            self._message_delta(event)
        elif kind == "message_start":
            self._message_start(event.get("message"), events)
        elif kind == "message_stop":
            self.done = True
            self._finish(events)
        elif kind == "error":
            error = event.get("error")
            kind = error.get("type") if isinstance(error, dict) else None
            if kind in _CLIENT_ERRORS and isinstance(error, dict):
                raise mid_stream_error(self.name, {**error, "code": 400})
            log.warning("upstream of %s reported an error mid-stream: %.500s", self.name, error)
            said = f" ({kind})" if isinstance(kind, str) and kind.isidentifier() else ""
            message = f"The upstream of `{self.name}` reported an error mid-stream{said}."
            if kind == "overloaded_error":
                # kept apart so a Messages client sees `overloaded_error`, as from Anthropic itself
                raise ServiceUnavailableError(message, code="upstream_overloaded")
            raise UpstreamError(message)
        # ping and event types added later: nothing to say

    def _delta(self, event: dict[str, Any], events: list[Event]) -> None:
        delta = event.get("delta")
        if not isinstance(delta, dict):
            return
        kind = delta.get("type")
        if kind == "text_delta":
            text = delta.get("text")
            if isinstance(text, str) and text:
                events.append(TextDelta(text))
        elif kind == "input_json_delta":
            block = self._blocks.get(event.get("index"))
            fragment = delta.get("partial_json")
            if block is not None and block.kind == "tool" and isinstance(fragment, str) and fragment:
                block.streamed = True
                events.append(ToolCallDelta(block.call, fragment))
        elif kind == "thinking_delta":
            text = delta.get("thinking")
            if isinstance(text, str) and text:
                events.append(ReasoningDelta(text))
        elif kind == "signature_delta":
            signature = delta.get("signature")
            if isinstance(signature, str) and signature:
                events.append(ReasoningDelta("", signature=signature))
        # citations_delta, compaction_delta and newer kinds: nothing OpenAI's chunks carry

    def _start(self, index: Any, block: dict[str, Any], events: list[Event]) -> None:
        kind = block.get("type")
        if kind == "text":
            self._blocks[index] = _Block("text")
            text = block.get("text")
            if isinstance(text, str) and text:
                events.append(TextDelta(text))
        elif kind == "thinking":
            self._blocks[index] = _Block("thinking")
            text, signature = block.get("thinking"), block.get("signature")
            if isinstance(text, str) and text:
                events.append(ReasoningDelta(text))
            if isinstance(signature, str) and signature:
                events.append(ReasoningDelta("", signature=signature))
        elif kind == "redacted_thinking":
            self._blocks[index] = _Block("thinking")
            data = block.get("data")
            events.append(ReasoningDelta("", redacted=data if isinstance(data, str) else ""))
        elif kind == "tool_use":
            call = self._calls
            self._calls += 1
            self._blocks[index] = _Block("tool", call, block.get("input"))
            events.append(ToolCallDelta(call, "", str(block.get("id") or ""), str(block.get("name") or "")))
        else:
            self._blocks[index] = _SKIP

    def _stop_block(self, block: _Block, events: list[Event]) -> None:
        if block.kind == "skip":
            return
        if block.kind == "tool" and not block.streamed:
            given = block.input
            arguments = orjson.dumps(given).decode() if isinstance(given, dict) and given else "{}"
            events.append(ToolCallDelta(block.call, arguments))
        events.append(BlockEnd())

    def _message_start(self, message: Any, events: list[Event]) -> None:
        if not isinstance(message, dict):
            return
        if isinstance(message.get("usage"), dict):
            self._merge_usage(message["usage"])
        upstream_id = message.get("id")
        events.append(Metadata(upstream_id=upstream_id if isinstance(upstream_id, str) else None))
        for position, block in enumerate(message.get("content") or ()):
            if isinstance(block, dict):  # content already whole (programmatic tool calling)
                index = -1 - position  # never an index the stream's own blocks use
                self._start(index, block, events)
                self._stop_block(self._blocks.pop(index), events)
        self._stop_reason(message)

    def _message_delta(self, event: dict[str, Any]) -> None:
        delta = event.get("delta")
        if isinstance(delta, dict):
            self._stop_reason(delta)
        if isinstance(event.get("usage"), dict):
            self._merge_usage(event["usage"])

    def _stop_reason(self, holder: dict[str, Any]) -> None:
        if holder.get("stop_reason"):
            self._stop = (holder["stop_reason"], holder.get("stop_sequence"))
            details = holder.get("stop_details")
            if isinstance(details, dict) and isinstance(details.get("explanation"), str):
                self._explanation = details["explanation"]

    def _merge_usage(self, raw: dict[str, Any]) -> None:
        """message_delta's counts are cumulative and replace message_start's, field by field."""
        for key in _USAGE_KEYS:
            if raw.get(key) is not None:
                self._usage[key] = raw[key]
        if isinstance(raw.get("output_tokens_details"), dict):
            self._usage["output_tokens_details"] = raw["output_tokens_details"]

    def _finish(self, events: list[Event]) -> None:
        reason, sequence = self._stop or (None, None)
        if reason == "refusal" and self._explanation and self._explain:
            events.append(RefusalDelta(self._explanation))  # OpenAI's place for a refusal's words
        events.append(finish(reason, sequence, self._calls > 0))
        if self._usage:
            events.append(usage(self._usage))

    def close(self) -> list[Event]:
        """The end of the body: an answer cut before its stop reason is the upstream's failure;
        one cut only before `message_stop` is finished here."""
        if self.done:
            return []
        if self._stop is None:
            raise UpstreamError(f"The upstream of `{self.name}` closed the stream before it finished.")
        self.done = True
        events: list[Event] = []
        self._finish(events)
        return events
