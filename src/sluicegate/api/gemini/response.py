"""Canonical answers -> Gemini's `GenerateContentResponse`, whole or as a stream of them.

Text is a `text` part, reasoning a `thought: true` part (with its `thoughtSignature`), a tool
call a `functionCall` part with its arguments as an object: streamed calls are held until
their choice finishes, since Gemini sends a call whole. `finishReason` is Gemini's own word
when a Gemini upstream said it, else OpenAI's mapped (stop -> STOP, length -> MAX_TOKENS,
content_filter -> SAFETY, a call -> STOP); `usageMetadata` goes on the last chunk.

Streams are SSE (`?alt=sse`, `data: <json>` events), or without it one JSON array written an
element at a time, as Google does.
"""

from __future__ import annotations

import secrets
from typing import Any

import orjson

from sluicegate.api.gemini.errors import error_bytes
from sluicegate.core.completion import Completion
from sluicegate.core.events import (
    Batch,
    Finish,
    ReasoningDelta,
    RefusalDelta,
    Started,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from sluicegate.errors import GatewayError

# Gemini's own finish reasons: an upstream that sent one of these (Finish.native) is believed
FINISH_REASONS = frozenset(
    {
        "STOP",
        "MAX_TOKENS",
        "SAFETY",
        "RECITATION",
        "LANGUAGE",
        "OTHER",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "MALFORMED_FUNCTION_CALL",
        "IMAGE_SAFETY",
        "UNEXPECTED_TOOL_CALL",
        "TOO_MANY_TOOL_CALLS",
    }
)
_FROM_OPENAI = {"stop": "STOP", "length": "MAX_TOKENS", "content_filter": "SAFETY", "tool_calls": "STOP"}


def new_response_id() -> str:
    return secrets.token_urlsafe(16)


def finish_reason(reason: str | None, native: str | None) -> str:
    if native in FINISH_REASONS:
        return native
    return _FROM_OPENAI.get(reason or "stop", "OTHER")


def usage_metadata(usage: Usage | None, prompt_tokens: int | None, chars: int) -> dict[str, Any]:
    """Gemini counts thoughts apart from the candidates' tokens; OpenAI's completion tokens
    include them."""
    if usage is None:
        prompt, output = prompt_tokens or 0, (chars + 3) // 4
        return {
            "promptTokenCount": prompt,
            "candidatesTokenCount": output,
            "totalTokenCount": prompt + output,
        }
    thoughts = usage.reasoning_tokens
    out: dict[str, Any] = {
        "promptTokenCount": usage.prompt_tokens,
        "candidatesTokenCount": max(0, usage.completion_tokens - thoughts),
        "totalTokenCount": usage.reported_total or usage.prompt_tokens + usage.completion_tokens,
    }
    if thoughts:
        out["thoughtsTokenCount"] = thoughts
    if usage.cached_tokens:
        out["cachedContentTokenCount"] = usage.cached_tokens
    return out


def _call_part(
    call_id: str | None, name: str, arguments: str, extra: dict[str, Any] | None
) -> dict[str, Any]:
    try:
        args = orjson.loads(arguments) if arguments.strip() else {}
    except orjson.JSONDecodeError:
        args = {}
    function_call: dict[str, Any] = {"name": name, "args": args if isinstance(args, dict) else {}}
    if call_id:
        function_call["id"] = call_id
    part: dict[str, Any] = {"functionCall": function_call}
    signature = ((extra or {}).get("extra_content") or {}).get("google", {}).get("thought_signature")
    if isinstance(signature, str) and signature:
        part["thoughtSignature"] = signature
    return part


def whole_body(completion: Completion, model: str, response_id: str) -> dict[str, Any]:
    candidates: list[dict[str, Any]] = []
    chars = 0
    for choice in completion.choices:
        parts: list[dict[str, Any]] = []
        if choice.reasoning or choice.reasoning_signature:
            thought: dict[str, Any] = {"text": choice.reasoning or "", "thought": True}
            if choice.reasoning_signature:
                thought["thoughtSignature"] = choice.reasoning_signature
            parts.append(thought)
        for text in (choice.content, choice.refusal):
            if text:
                parts.append({"text": text})
                chars += len(text)
        for call in choice.tool_calls:
            parts.append(_call_part(call.id, call.name, call.arguments, call.extra))
            chars += len(call.arguments)
        candidates.append(
            {
                "content": {"parts": parts, "role": "model"},
                "finishReason": finish_reason(choice.finish_reason, choice.native_finish),
                "index": choice.index,
            }
        )
    prompt = completion.origin.prompt_tokens if completion.origin is not None else None
    return {
        "candidates": candidates,
        "usageMetadata": usage_metadata(completion.usage, prompt, chars),
        "modelVersion": model,
        "responseId": response_id,
    }


class _Call:
    __slots__ = ("arguments", "extra", "id", "name")

    def __init__(self, event: ToolCallDelta) -> None:
        self.id, self.name, self.arguments, self.extra = event.id, event.name or "", "", event.extra


class GeminiStreamEncoder:
    """One `GenerateContentResponse` a batch; `sse` frames each as an event, else the stream
    is one JSON array."""

    __slots__ = (
        "_calls",
        "_chars",
        "_count",
        "_finish",
        "_model",
        "_prompt_tokens",
        "_response_id",
        "_sse",
        "_usage",
    )

    def __init__(self, model: str, response_id: str, sse: bool) -> None:
        self._model = model
        self._response_id = response_id
        self._sse = sse
        self._count = 0  # chunks written
        self._calls: dict[int, dict[int, _Call]] = {}  # choice -> call index -> call so far
        self._finish: dict[int, str] = {}  # choice -> Gemini's finish reason
        self._usage: Usage | None = None
        self._prompt_tokens: int | None = None
        self._chars = 0

    def open(self, started: Started) -> bytes:
        self._prompt_tokens = started.prompt_tokens
        return b"" if self._sse else b"["

    def keepalive(self) -> bytes:
        """An SSE comment, or whitespace between the array's elements."""
        return b": keep-alive\n\n" if self._sse else b"\n"

    def encode_batch(self, batch: Batch) -> bytes:
        parts: dict[int, list[dict[str, Any]]] = {}
        finished: list[int] = []
        for event in batch:
            kind = type(event)
            if kind is TextDelta or kind is RefusalDelta:
                text: TextDelta = event  # type: ignore[assignment]
                if text.text:
                    self._chars += len(text.text)
                    parts.setdefault(text.choice, []).append({"text": text.text})
            elif kind is ReasoningDelta:
                reasoning: ReasoningDelta = event  # type: ignore[assignment]
                if reasoning.text or reasoning.signature:
                    part: dict[str, Any] = {"text": reasoning.text, "thought": True}
                    if reasoning.signature:
                        part["thoughtSignature"] = reasoning.signature
                    parts.setdefault(reasoning.choice, []).append(part)
            elif kind is ToolCallDelta:
                delta: ToolCallDelta = event  # type: ignore[assignment]
                calls = self._calls.setdefault(delta.choice, {})
                call = calls.get(delta.index)
                if call is None:
                    call = calls[delta.index] = _Call(delta)
                call.arguments += delta.arguments
                self._chars += len(delta.arguments)
            elif kind is Finish:
                finish: Finish = event  # type: ignore[assignment]
                self._finish[finish.choice] = finish_reason(finish.reason, finish.native)
                parts.setdefault(finish.choice, []).extend(self._held_calls(finish.choice))
                finished.append(finish.choice)
            elif kind is Usage:
                self._usage = event  # type: ignore[assignment]
        candidates = []
        for choice, choice_parts in sorted(parts.items()):
            if not choice_parts and choice not in finished:
                continue
            candidate: dict[str, Any] = {"content": {"parts": choice_parts, "role": "model"}, "index": choice}
            candidates.append(candidate)
        if not candidates:
            return b""
        return self._chunk(
            {"candidates": candidates, "modelVersion": self._model, "responseId": self._response_id}
        )

    def _held_calls(self, choice: int) -> list[dict[str, Any]]:
        calls = self._calls.pop(choice, {})
        return [
            _call_part(call.id, call.name, call.arguments, call.extra) for _, call in sorted(calls.items())
        ]

    def _chunk(self, payload: dict[str, Any]) -> bytes:
        data = orjson.dumps(payload)
        self._count += 1
        if self._sse:
            return b"data: " + data + b"\r\n\r\n"
        return (b"\r\n," if self._count > 1 else b"") + data

    def close(self) -> bytes:
        """The last chunk: each candidate's finish reason (and any call still held), and the usage."""
        choices = sorted(set(self._finish) | set(self._calls)) or [0]
        candidates = []
        for choice in choices:
            parts = self._held_calls(choice)
            candidates.append(
                {
                    "content": {"parts": parts or [{"text": ""}], "role": "model"},
                    "finishReason": self._finish.get(choice, "STOP"),
                    "index": choice,
                }
            )
        last = self._chunk(
            {
                "candidates": candidates,
                "usageMetadata": usage_metadata(self._usage, self._prompt_tokens, self._chars),
                "modelVersion": self._model,
                "responseId": self._response_id,
            }
        )
        return last + (b"" if self._sse else b"]")

    def fail(self, error: GatewayError) -> bytes:
        """A failure after the first byte: Google's error object as the stream's last element."""
        if self._sse:
            return b"data: " + error_bytes(error) + b"\r\n\r\n"
        self._count += 1
        return (b"\r\n," if self._count > 1 else b"") + error_bytes(error) + b"]"
