"""A whole completion -> OpenAI's `chat.completion` object."""

from __future__ import annotations

from typing import Any

from sluicegate.core.completion import Completion


def completion_body(completion: Completion, completion_id: str, created: int, model: str) -> dict[str, Any]:
    choices: list[dict[str, Any]] = []
    for choice in completion.choices:
        message: dict[str, Any] = {"role": "assistant", "content": choice.content, "refusal": choice.refusal}
        if choice.reasoning:
            message["reasoning_content"] = choice.reasoning
        if choice.tool_calls:
            message["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                    **(call.extra or {}),
                }
                for call in choice.tool_calls
            ]
        message.update(choice.extra)
        body = {
            "index": choice.index,
            "message": message,
            "logprobs": choice.logprobs,
            "finish_reason": choice.finish_reason or "stop",
        }
        body.update(choice.choice_extra)
        choices.append(body)
    body = {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": choices,
        "usage": completion.usage.to_dict() if completion.usage else None,
    }
    meta = completion.metadata
    if meta is not None:
        if meta.service_tier is not None:
            body["service_tier"] = meta.service_tier
        if meta.system_fingerprint is not None:
            body["system_fingerprint"] = meta.system_fingerprint
        for key, value in meta.extra.items():
            body.setdefault(key, value)
    return body
