"""OpenAI messages -> the plain-text messages a chat template expects."""

from __future__ import annotations

from typing import Any

from sluicegate.errors import InvalidRequestError
from sluicegate.providers.local.tools import ToolPlan, render_calls


def flatten_messages(messages: list[dict[str, Any]], model: str) -> list[dict[str, str]]:
    """Join text parts; a local text model cannot see images or audio, so say so clearly."""
    flat: list[dict[str, str]] = []
    for position, message in enumerate(messages):
        role = "system" if message["role"] == "developer" else message["role"]
        content = message.get("content")
        if isinstance(content, list):
            texts: list[str] = []
            for part_index, part in enumerate(content):
                if part.get("type") != "text" or not isinstance(part.get("text"), str):
                    raise InvalidRequestError(
                        f"The model `{model}` only reads text content parts, not `{part.get('type')}`.",
                        param=f"messages.[{position}].content.[{part_index}]",
                        code="unsupported_content",
                    )
                texts.append(part["text"])
            text = "".join(texts)
        elif content is None:
            text = ""
        else:
            text = str(content)
        if message.get("tool_calls"):
            text += render_calls(message["tool_calls"])
        flat.append({"role": role, "content": text})
    return flat


def with_tools(messages: list[dict[str, str]], plan: ToolPlan | None) -> list[dict[str, str]]:
    """The tools described after the system prompt (or as one, when there is none)."""
    if plan is None:
        return messages
    if messages and messages[0]["role"] == "system":
        first = messages[0]["content"]
        return [{"role": "system", "content": f"{first}\n\n{plan.instructions()}"}, *messages[1:]]
    return [{"role": "system", "content": plan.instructions()}, *messages]
