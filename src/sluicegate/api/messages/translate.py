"""An Anthropic Messages request -> the canonical request, in OpenAI's chat vocabulary.

The client's body stays whole in `raw` (wire format "anthropic_messages"), so an Anthropic upstream gets it
as sent, thinking signatures and cache controls included. The typed fields are what every
other provider reads: system -> a system message; text and images -> content parts (images as
data URLs or URLs); `tool_use` -> an assistant's `tool_calls`; `tool_result` -> `tool`
messages; thinking blocks and block types only Anthropic knows stay in `raw` alone.
"""

from __future__ import annotations

from typing import Any

import orjson

from sluicegate.api.messages.schemas import (
    Base64Source,
    Block,
    CountTokensRequest,
    DocumentBlock,
    ImageBlock,
    MessagesRequest,
    OtherBlock,
    TextBlock,
    ToolChoice,
    ToolParam,
    ToolResultBlock,
    ToolUseBlock,
    URLSource,
    validate,
)
from sluicegate.core.request import ChatRequest


def parse_messages_request(body: Any) -> ChatRequest:
    """A `POST /v1/messages` body -> the canonical request, or a 400."""
    parsed: MessagesRequest = validate(MessagesRequest, body)
    chat = _canonical(parsed, body)
    chat.stream = bool(parsed.stream)
    chat.include_usage = True
    chat.max_tokens = parsed.max_tokens
    chat.temperature = parsed.temperature
    chat.top_p = parsed.top_p
    chat.stop = list(parsed.stop_sequences or [])
    if parsed.metadata is not None and parsed.metadata.user_id:
        chat.user = parsed.metadata.user_id
    return chat


def parse_count_request(body: Any) -> ChatRequest:
    """A `POST /v1/messages/count_tokens` body (no `max_tokens`) -> the canonical request."""
    return _canonical(validate(CountTokensRequest, body), body)


def _canonical(parsed: CountTokensRequest, body: dict[str, Any]) -> ChatRequest:
    tools = _tools(parsed.tools, _referenced_tools(parsed))
    chat = ChatRequest(
        model=parsed.model,
        messages=openai_messages(parsed),
        raw=body,
        wire_format="anthropic_messages",
        tools=tools,
        param_names={"reasoning_effort": "thinking"},
    )
    if tools and parsed.tool_choice is not None:
        chat.tool_choice = _tool_choice(parsed.tool_choice)
        if parsed.tool_choice.disable_parallel_tool_use:
            chat.parallel_tool_calls = False
    elif parsed.tool_choice is not None and parsed.tool_choice.type == "none":
        chat.tool_choice = "none"
    thinking = parsed.thinking
    if thinking is not None and thinking.type == "enabled" and thinking.budget_tokens is not None:
        chat.thinking_budget = thinking.budget_tokens
        chat.reasoning_effort = reasoning_effort(thinking.budget_tokens)
    # `thinking: {type: "adaptive"}` lets the model decide whether to think: a model that
    # cannot think has decided; `output_config.effort` is a spending measure only Anthropic's
    # models have. Both are left to an Anthropic upstream, which gets the body as sent.
    output_format = parsed.output_config.format if parsed.output_config is not None else None
    if output_format is not None and output_format.schema_ is not None:
        chat.response_format = {
            "type": "json_schema",
            "json_schema": {"name": "output", "schema": output_format.schema_, "strict": True},
        }
    return chat


def reasoning_effort(budget_tokens: int) -> str:
    """Anthropic's thinking budget in OpenAI's words: under 4k low, under 16k medium, else high."""
    if budget_tokens < 4096:
        return "low"
    if budget_tokens < 16384:
        return "medium"
    return "high"


def openai_messages(parsed: CountTokensRequest) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    if isinstance(parsed.system, str):
        if parsed.system:
            messages.append({"role": "system", "content": parsed.system})
    elif parsed.system:
        messages.append({"role": "system", "content": "\n".join(block.text for block in parsed.system)})
    for message in parsed.messages:
        if isinstance(message.content, str):
            messages.append({"role": message.role, "content": message.content})
        elif message.role == "system":  # in place, as the client put it
            text = "\n".join(block.text for block in message.content if isinstance(block, TextBlock))
            messages.append({"role": "system", "content": text})
        elif message.role == "assistant":
            messages.extend(_assistant(message.content))
        else:
            messages.extend(_user(message.content))
    return messages


def _assistant(blocks: list[Block]) -> list[dict[str, Any]]:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in blocks:
        if isinstance(block, TextBlock):
            texts.append(block.text)
        elif isinstance(block, ToolUseBlock):
            arguments = orjson.dumps(block.input).decode()
            calls.append(
                {"id": block.id, "type": "function", "function": {"name": block.name, "arguments": arguments}}
            )
        # thinking, redacted thinking and server-tool blocks: only an Anthropic upstream reads them
    if not texts and not calls:
        return []
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        message["tool_calls"] = calls
    return [message]


def _user(blocks: list[Block]) -> list[dict[str, Any]]:
    """Tool results become `tool` messages, which OpenAI wants right after the assistant's
    calls; the rest (text, images, and images a tool returned) follows as one user message."""
    tool_messages: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    tool_images: list[dict[str, Any]] = []
    for block in blocks:
        if isinstance(block, ToolResultBlock):
            text, images = _tool_result(block)
            tool_messages.append({"role": "tool", "tool_call_id": block.tool_use_id, "content": text})
            tool_images.extend(images)
        else:
            part = _part(block)
            if part is not None:
                parts.append(part)
    parts = tool_images + parts
    if not parts:
        return tool_messages
    if len(parts) == 1 and parts[0]["type"] == "text":
        return [*tool_messages, {"role": "user", "content": parts[0]["text"]}]
    return [*tool_messages, {"role": "user", "content": parts}]


def _tool_result(block: ToolResultBlock) -> tuple[str, list[dict[str, Any]]]:
    images: list[dict[str, Any]] = []
    if isinstance(block.content, str):
        text = block.content
    else:
        texts: list[str] = []
        for item in block.content or []:
            part = _part(item)
            if part is None:
                referenced = _reference_name(item)
                if referenced is not None:
                    texts.append(f"Tool {referenced} loaded.")
                continue
            if part["type"] == "text":
                texts.append(part["text"])
            else:
                images.append(part)
        text = "\n".join(texts)
    if block.is_error:
        text = f"Error: {text}"
    return text, images


def _part(block: Block) -> dict[str, Any] | None:
    """One content block as an OpenAI content part; None for what only Anthropic reads."""
    if isinstance(block, TextBlock):
        return {"type": "text", "text": block.text}
    if isinstance(block, ImageBlock):
        source = block.source
        if isinstance(source, Base64Source):
            url = f"data:{source.media_type};base64,{source.data}"
        elif isinstance(source, URLSource):
            url = source.url
        else:
            return None  # a Files API id means nothing to another provider
        return {"type": "image_url", "image_url": {"url": url}}
    if isinstance(block, DocumentBlock):
        return _document(block)
    return None


def _document(block: DocumentBlock) -> dict[str, Any] | None:
    source = block.source
    kind, data = source.get("type"), source.get("data")
    if kind == "text" and isinstance(data, str):
        return {"type": "text", "text": f"{block.title}\n\n{data}" if block.title else data}
    if kind == "base64" and isinstance(data, str) and source.get("media_type") == "application/pdf":
        filename = f"{block.title or 'document'}.pdf"
        return {
            "type": "file",
            "file": {"filename": filename, "file_data": f"data:application/pdf;base64,{data}"},
        }
    return None


def _referenced_tools(parsed: CountTokensRequest) -> set[str]:
    """The deferred tools a `tool_reference` block (a tool search's result) has brought in."""
    names: set[str] = set()
    for message in parsed.messages:
        for block in message.content if isinstance(message.content, list) else []:
            if isinstance(block, ToolResultBlock) and isinstance(block.content, list):
                names.update(_reference_name(item) or "" for item in block.content)
    names.discard("")
    return names


def _reference_name(block: Block) -> str | None:
    if isinstance(block, OtherBlock) and block.type == "tool_reference":
        name = (block.model_extra or {}).get("tool_name")
        return name if isinstance(name, str) else None
    return None


def _tools(tools: list[ToolParam] | None, referenced: set[str]) -> list[dict[str, Any]] | None:
    """Client tools as OpenAI function tools; server tools (web search...) run only at Anthropic.
    A tool with `defer_loading` is offered once a tool search has referenced it, as Anthropic does."""
    functions: list[dict[str, Any]] = []
    for tool in tools or []:
        if tool.type not in (None, "custom"):
            continue
        if tool.defer_loading and tool.name not in referenced:
            continue
        function: dict[str, Any] = {"name": tool.name, "parameters": tool.input_schema}
        if tool.description is not None:
            function["description"] = tool.description
        functions.append({"type": "function", "function": function})
    return functions or None


def _tool_choice(choice: ToolChoice) -> Any:
    if choice.type == "any":
        return "required"
    if choice.type == "tool":
        return {"type": "function", "function": {"name": choice.name}}
    return choice.type  # auto | none
