"""A whole completion -> Anthropic's `message` object, and the words both forms share
(stop reasons, usage fields, ids)."""

from __future__ import annotations

import secrets
import string
from typing import Any

import orjson

from sluicegate.core.completion import Completion
from sluicegate.core.events import Usage

_ID_ALPHABET = string.ascii_letters + string.digits

# Anthropic's own stop reasons: an upstream that sent one of these (Finish.native) is believed.
STOP_REASONS = frozenset(
    {
        "end_turn",
        "max_tokens",
        "stop_sequence",
        "tool_use",
        "pause_turn",
        "refusal",
        "model_context_window_exceeded",
    }
)


def new_id(prefix: str) -> str:
    """`msg_...` / `toolu_...`: Anthropic's prefixes and length, 24 base62 characters."""
    return prefix + "".join(secrets.choice(_ID_ALPHABET) for _ in range(24))


def stop_reason(reason: str | None, native: str | None, stop_sequence: str | None, tool_use: bool) -> str:
    """OpenAI's finish reason (or none at all) in Anthropic's words."""
    if native in STOP_REASONS:
        return native
    if reason == "length":
        return "max_tokens"
    if reason in ("tool_calls", "function_call") or (reason is None and tool_use):
        return "tool_use"
    if reason == "content_filter":
        return "refusal"
    return "stop_sequence" if stop_sequence else "end_turn"


def estimate_tokens(chars: int) -> int:
    """About four characters a token: for an upstream that reported no usage."""
    return (chars + 3) // 4


def usage_fields(usage: Usage) -> dict[str, int]:
    """Anthropic counts input without the cached and cache-write tokens; OpenAI's prompt
    tokens (the canonical ones) include both."""
    cached, written = usage.cached_tokens, usage.cache_creation_tokens
    return {
        "input_tokens": max(0, usage.prompt_tokens - cached - written),
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": cached,
        "output_tokens": usage.completion_tokens,
    }


def message_body(completion: Completion, message_id: str, model: str) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    reason = native = sequence = None
    chars = 0
    if completion.choices:
        choice = completion.choices[0]
        reason, native, sequence = choice.finish_reason, choice.native_finish, choice.stop_sequence
        if choice.reasoning or choice.reasoning_signature:
            thinking = choice.reasoning or ""
            content.append(
                {"type": "thinking", "thinking": thinking, "signature": choice.reasoning_signature or ""}
            )
            chars += len(thinking)
        for text in (choice.content, choice.refusal):
            if text:
                content.append({"type": "text", "text": text})
                chars += len(text)
        for call in choice.tool_calls:
            content.append(
                {
                    "type": "tool_use",
                    "id": call.id or new_id("toolu_"),
                    "name": call.name,
                    "input": tool_input(call.arguments),
                }
            )
            chars += len(call.name) + len(call.arguments)
    if completion.usage is not None:
        usage: dict[str, int] = usage_fields(completion.usage)
    else:
        prompt = completion.origin.prompt_tokens if completion.origin is not None else None
        usage = {
            "input_tokens": prompt or 0,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": estimate_tokens(chars),
        }
    tool_use = any(block["type"] == "tool_use" for block in content)
    word = stop_reason(reason, native, sequence, tool_use)
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": word,
        "stop_sequence": sequence if word == "stop_sequence" else None,
        "usage": usage,
    }


def tool_input(arguments: str) -> dict[str, Any]:
    """A tool call's JSON arguments as the object Anthropic's `input` is; {} when the model
    wrote none (or wrote something that is not a JSON object)."""
    if not arguments.strip():
        return {}
    try:
        parsed = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return {}
    return parsed if isinstance(parsed, dict) else {}
