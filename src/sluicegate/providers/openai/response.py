"""A whole OpenAI `chat.completion` answer -> the canonical Completion, fields kept.

Message and choice fields the gateway has no name for (`annotations`, `audio`...) are kept
and sent back to OpenAI-speaking clients as they came.
"""

from __future__ import annotations

from typing import Any

import orjson

from sluicegate.core.completion import Choice, Completion, ToolCall
from sluicegate.core.events import Metadata
from sluicegate.errors import UpstreamError
from sluicegate.providers.openai.chunks import finish_reason, parse_usage

_KNOWN_MESSAGE_KEYS = frozenset({"role", "content", "refusal", "tool_calls", "reasoning_content", "reasoning"})
_KNOWN_CHOICE_KEYS = frozenset({"index", "message", "logprobs", "finish_reason"})
_KNOWN_TOP_KEYS = frozenset(
    {"id", "object", "created", "model", "choices", "usage", "system_fingerprint", "service_tier"}
)


def parse_completion(body: Any, name: str) -> Completion:
    if not isinstance(body, dict) or not isinstance(body.get("choices"), list):
        raise UpstreamError(f"The upstream of `{name}` answered without a `choices` list.")
    choices = [_choice(raw, position, name) for position, raw in enumerate(body["choices"])]
    return Completion(choices=choices, usage=parse_usage(body.get("usage")), metadata=parse_metadata(body))


def parse_metadata(body: dict[str, Any]) -> Metadata:
    fingerprint = body.get("system_fingerprint")
    tier = body.get("service_tier")
    return Metadata(
        system_fingerprint=fingerprint if isinstance(fingerprint, str) else None,
        service_tier=tier if isinstance(tier, str) else None,
        upstream_id=body.get("id") if isinstance(body.get("id"), str) else None,
        extra={k: v for k, v in body.items() if k not in _KNOWN_TOP_KEYS},
    )


def _choice(raw: Any, position: int, name: str) -> Choice:
    if not isinstance(raw, dict):
        raise UpstreamError(f"The upstream of `{name}` answered with a malformed choice.")
    message = raw.get("message") or {}
    if not isinstance(message, dict):
        raise UpstreamError(f"The upstream of `{name}` answered with a malformed message.")
    calls: list[ToolCall] = []
    for call in message.get("tool_calls") or ():
        if not isinstance(call, dict):
            raise UpstreamError(f"The upstream of `{name}` answered with a malformed tool call.")
        function: dict[str, Any] = call["function"] if isinstance(call.get("function"), dict) else {}
        arguments = function.get("arguments")
        if not isinstance(arguments, str):
            arguments = "" if arguments is None else _dumps(arguments)
        extra = {k: v for k, v in call.items() if k not in ("id", "type", "function")} or None
        calls.append(
            ToolCall(
                id=str(call.get("id") or ""),
                name=str(function.get("name") or ""),
                arguments=arguments,
                extra=extra,
            )
        )
    content = message.get("content")
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    refusal = message.get("refusal")
    index = raw.get("index", position)
    logprobs = raw.get("logprobs")
    reason = raw.get("finish_reason")
    return Choice(
        index=index if isinstance(index, int) else position,
        content=content if isinstance(content, str) else _text_parts(content),
        refusal=refusal if isinstance(refusal, str) else None,
        reasoning=reasoning if isinstance(reasoning, str) else None,
        tool_calls=calls,
        finish_reason=finish_reason(reason) if reason else ("tool_calls" if calls else "stop"),
        native_finish=str(reason) if reason else None,
        logprobs=logprobs if isinstance(logprobs, dict) else None,
        extra={k: v for k, v in message.items() if k not in _KNOWN_MESSAGE_KEYS},
        choice_extra={k: v for k, v in raw.items() if k not in _KNOWN_CHOICE_KEYS},
    )


def _text_parts(content: Any) -> str | None:
    """Mistral-style list content in a whole answer: the text parts joined."""
    if not isinstance(content, list):
        return None
    texts = [p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)]
    return "".join(texts) if texts else None


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()
