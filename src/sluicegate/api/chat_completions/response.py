"""A whole completion -> OpenAI's `chat.completion` object."""

from __future__ import annotations

from typing import Any

from sluicegate.core.completion import Completion


def completion_body(completion: Completion, completion_id: str, created: int, model: str) -> dict[str, Any]:
    choices: list[dict[str, Any]] = []
    for choice in completion.choices:
        message: dict[str, Any] = {"role": "assistant", "content": choice.content, "refusal": None}
        if choice.reasoning:
            message["reasoning_content"] = choice.reasoning
        if choice.tool_calls:
            message["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
                for call in choice.tool_calls
            ]
        logprobs = choice.extra.get("logprobs")
        message.update({k: v for k, v in choice.extra.items() if k != "logprobs"})
        choices.append(
            {
                "index": choice.index,
                "message": message,
                "logprobs": logprobs,
                "finish_reason": choice.finish_reason or "stop",
            }
        )
    body: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": choices,
        "usage": completion.usage.to_dict() if completion.usage else None,
    }
    if completion.system_fingerprint:
        body["system_fingerprint"] = completion.system_fingerprint
    return body
