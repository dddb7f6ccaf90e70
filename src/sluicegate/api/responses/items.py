"""Responses items <-> chat messages.

Input items are normalised once, when the request arrives: validated, given ids, a string
content turned into parts. That form is what is stored and what `input_items` lists. Any run
of normalised items (a stored conversation's inputs and outputs, then the new input) becomes
chat messages in OpenAI's vocabulary, the gateway's canonical one.
"""

from __future__ import annotations

import secrets
from typing import Any

from sluicegate.api.responses.checks import (
    invalid_type,
    invalid_value,
    missing,
    one_of,
    optional_str,
    required_str,
    unsupported,
)
from sluicegate.api.responses.tools import flat_name

ROLES = ("user", "assistant", "system", "developer")
_IMAGE_DETAILS = ("low", "high", "auto")


def new_id(prefix: str) -> str:
    return prefix + secrets.token_hex(24)


def normalize_input(value: Any) -> list[dict[str, Any]]:
    """The request's `input` as normalised items (a string is one user message)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [_message_item("user", [{"type": "input_text", "text": value}])]
    if not isinstance(value, list):
        raise invalid_type("input", "a string or an array of input items", value)
    return [_item(item, f"input[{position}]") for position, item in enumerate(value)]


def _message_item(role: str, content: list[dict[str, Any]], item_id: str | None = None) -> dict[str, Any]:
    return {
        "id": item_id or new_id("msg_"),
        "type": "message",
        "role": role,
        "status": "completed",
        "content": content,
    }


def _item(item: Any, param: str) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise invalid_type(param, "an object", item)
    kind = item.get("type")
    if kind == "message" or (kind is None and "role" in item):
        return _message(item, param)
    if kind == "function_call":
        call = {
            "id": optional_str(item, "id", f"{param}.id") or new_id("fc_"),
            "type": "function_call",
            "status": "completed",
            "call_id": required_str(item, "call_id", f"{param}.call_id"),
            "name": required_str(item, "name", f"{param}.name"),
            "arguments": required_str(item, "arguments", f"{param}.arguments"),
        }
        namespace = optional_str(item, "namespace", f"{param}.namespace")
        if namespace:
            call["namespace"] = namespace
        return call
    if kind == "function_call_output":
        return {
            "id": optional_str(item, "id", f"{param}.id") or new_id("fco_"),
            "type": "function_call_output",
            "status": "completed",
            "call_id": required_str(item, "call_id", f"{param}.call_id"),
            "output": _call_output(item.get("output"), f"{param}.output"),
        }
    if kind == "reasoning":
        return dict(item)  # kept as sent; a chat model is not shown another model's reasoning
    if kind is None:
        raise missing(f"{param}.type")
    if not isinstance(kind, str):
        raise invalid_type(f"{param}.type", "a string", kind)
    if kind == "item_reference":
        raise unsupported(
            f"{param}.type",
            "sluicegate does not resolve 'item_reference' items; send the item itself, or continue a"
            " stored response with 'previous_response_id'.",
        )
    raise unsupported(
        f"{param}.type",
        f"Input items of type '{kind}' are not supported: sluicegate runs no built-in tools, so it"
        " accepts messages, 'function_call', 'function_call_output' and 'reasoning' items.",
    )


def _message(item: dict[str, Any], param: str) -> dict[str, Any]:
    role = item.get("role")
    if role is None:
        raise missing(f"{param}.role")
    one_of(item, "role", ROLES, f"{param}.role")
    content = item.get("content")
    assistant = role == "assistant"
    if content is None:
        raise missing(f"{param}.content")
    if isinstance(content, str):
        parts = [_output_text(content) if assistant else {"type": "input_text", "text": content}]
    elif isinstance(content, list):
        parts = [_part(part, assistant, f"{param}.content[{index}]") for index, part in enumerate(content)]
    else:
        raise invalid_type(f"{param}.content", "a string or an array of content parts", content)
    return _message_item(role, parts, optional_str(item, "id", f"{param}.id"))


def _output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _part(part: Any, assistant: bool, param: str) -> dict[str, Any]:
    if not isinstance(part, dict):
        raise invalid_type(param, "an object", part)
    kind = part.get("type")
    if kind == "input_text" or (assistant and kind == "output_text"):
        text = required_str(part, "text", f"{param}.text")
        return _output_text(text) if kind == "output_text" else {"type": "input_text", "text": text}
    if assistant and kind == "refusal":
        return {"type": "refusal", "refusal": required_str(part, "refusal", f"{param}.refusal")}
    if not assistant and kind == "input_image":
        if part.get("image_url") is None:
            if part.get("file_id") is not None:
                raise unsupported(
                    f"{param}.file_id", "sluicegate has no Files API: send images as 'image_url'."
                )
            raise missing(f"{param}.image_url")
        url = required_str(part, "image_url", f"{param}.image_url")
        detail = one_of(part, "detail", _IMAGE_DETAILS, f"{param}.detail") or "auto"
        return {"type": "input_image", "image_url": url, "detail": detail}
    if kind in ("input_file", "input_audio"):
        raise unsupported(f"{param}.type", f"'{kind}' content parts are not supported by sluicegate.")
    allowed = "'output_text', 'refusal'" if assistant else "'input_text', 'input_image'"
    raise invalid_value(f"{param}.type", f"'{kind}'. Supported values are: {allowed}.")


def _call_output(output: Any, param: str) -> str | list[dict[str, Any]]:
    if output is None:
        raise missing(param)
    if isinstance(output, str):
        return output
    if not isinstance(output, list):
        raise invalid_type(param, "a string or an array of content parts", output)
    parts: list[dict[str, Any]] = []
    for index, part in enumerate(output):
        if not isinstance(part, dict) or part.get("type") != "input_text":
            raise unsupported(
                f"{param}[{index}]", "Function call outputs may hold text only ('input_text' parts)."
            )
        parts.append({"type": "input_text", "text": required_str(part, "text", f"{param}[{index}].text")})
    return parts


def to_messages(items: list[dict[str, Any]], instructions: str | None) -> list[dict[str, Any]]:
    """Normalised items (stored or new) -> chat messages, the instructions first."""
    messages: list[dict[str, Any]] = []
    if instructions:
        messages.append({"role": "system", "content": instructions})
    for item in items:
        kind = item.get("type")
        if kind == "message":
            messages.append(_chat_message(item))
        elif kind == "function_call":
            call = {
                "id": item["call_id"],
                "type": "function",
                "function": {"name": flat_name(item.get("namespace"), item["name"]), "arguments": item["arguments"]},
            }
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant":
                last.setdefault("tool_calls", []).append(call)  # calls that follow text: one turn
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            output = item["output"]
            text = output if isinstance(output, str) else "".join(part["text"] for part in output)
            messages.append({"role": "tool", "tool_call_id": item["call_id"], "content": text})
        # reasoning items: not replayed to the model
    return messages


def _chat_message(item: dict[str, Any]) -> dict[str, Any]:
    role = item["role"]
    parts: list[dict[str, Any]] = item["content"]
    if role == "assistant":
        text = "".join(part["text"] for part in parts if part["type"] in ("output_text", "input_text"))
        message: dict[str, Any] = {"role": "assistant", "content": text}
        refusal = "".join(part["refusal"] for part in parts if part["type"] == "refusal")
        if refusal:
            message["refusal"] = refusal
        return message
    chat_parts: list[dict[str, Any]] = []
    for part in parts:
        if part["type"] == "input_image":
            chat_parts.append(
                {"type": "image_url", "image_url": {"url": part["image_url"], "detail": part["detail"]}}
            )
        else:
            chat_parts.append({"type": "text", "text": part["text"]})
    if len(chat_parts) == 1 and chat_parts[0]["type"] == "text":
        return {"role": role, "content": chat_parts[0]["text"]}
    return {"role": role, "content": chat_parts}
