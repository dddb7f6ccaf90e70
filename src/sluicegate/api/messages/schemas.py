"""The request bodies of `POST /v1/messages` and `/v1/messages/count_tokens`, validated strictly.

Known fields are checked as Anthropic checks them (types, ranges, `max_tokens` required) and a
failure names the field the way Anthropic does (`messages.0.content.1.source.data: Field
required`). Unknown fields and unknown content-block types are accepted and kept in the raw
body, which an Anthropic upstream receives as sent: a field newer than this gateway never
breaks a request.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError
from pydantic_core import ErrorDetails

from sluicegate.api.limits import MAX_TOKENS_VALUE, check_count, check_depth
from sluicegate.errors import InvalidRequestError
from sluicegate.field_paths import field_path, most_specific


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


class TextBlock(_Model):
    type: Literal["text"]
    text: str


class Base64Source(_Model):
    type: Literal["base64"]
    media_type: Literal["image/jpeg", "image/png", "image/gif", "image/webp"]
    data: str


class URLSource(_Model):
    type: Literal["url"]
    url: Annotated[str, Field(min_length=1)]


class OtherSource(_Model):
    type: str  # `file` (a Files API id) and sources newer than the gateway


def _source_tag(value: Any) -> str:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return f"{kind}-source" if kind in ("base64", "url") else "other-source"


ImageSource = Annotated[
    Annotated[Base64Source, Tag("base64-source")]
    | Annotated[URLSource, Tag("url-source")]
    | Annotated[OtherSource, Tag("other-source")],
    Discriminator(_source_tag),
]


class ImageBlock(_Model):
    type: Literal["image"]
    source: ImageSource


class DocumentBlock(_Model):
    type: Literal["document"]
    source: dict[str, Any]
    title: str | None = None


class ToolResultBlock(_Model):
    type: Literal["tool_result"]
    tool_use_id: Annotated[str, Field(min_length=1)]
    content: str | list[Block] | None = None
    is_error: bool | None = None


class ToolUseBlock(_Model):
    type: Literal["tool_use"]
    id: Annotated[str, Field(min_length=1)]
    name: Annotated[str, Field(min_length=1)]
    input: dict[str, Any]


class ThinkingBlock(_Model):
    type: Literal["thinking"]
    thinking: str
    signature: str | None = None


class RedactedThinkingBlock(_Model):
    type: Literal["redacted_thinking"]
    data: str


class OtherBlock(_Model):
    type: str  # server tool blocks, search results... kept for an Anthropic upstream only


_BLOCK_TYPES = frozenset(
    {"text", "image", "document", "tool_use", "tool_result", "thinking", "redacted_thinking"}
)


def _block_tag(value: Any) -> str:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return f"{kind}-block" if kind in _BLOCK_TYPES else "other-block"


Block = Annotated[
    Annotated[TextBlock, Tag("text-block")]
    | Annotated[ImageBlock, Tag("image-block")]
    | Annotated[DocumentBlock, Tag("document-block")]
    | Annotated[ToolUseBlock, Tag("tool_use-block")]
    | Annotated[ToolResultBlock, Tag("tool_result-block")]
    | Annotated[ThinkingBlock, Tag("thinking-block")]
    | Annotated[RedactedThinkingBlock, Tag("redacted_thinking-block")]
    | Annotated[OtherBlock, Tag("other-block")],
    Discriminator(_block_tag),
]
ToolResultBlock.model_rebuild()


class MessageParam(_Model):
    # "system" inside `messages`: what Claude Code sends for models it does not know as Claude
    role: Literal["user", "assistant", "system"]
    content: str | list[Block]


class ToolParam(_Model):
    name: Annotated[str, Field(min_length=1)]
    type: str | None = None  # absent or "custom": a client tool; else a server tool (web_search_...)
    description: str | None = None
    input_schema: dict[str, Any] | None = None
    defer_loading: bool | None = None  # offered once a `tool_reference` block names it (tool search)


class ToolChoice(_Model):
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None
    disable_parallel_tool_use: bool | None = None


class ThinkingConfig(_Model):
    type: str  # "enabled" | "disabled" | newer kinds, which an Anthropic upstream understands
    budget_tokens: Annotated[int, Field(ge=1024, le=MAX_TOKENS_VALUE)] | None = None


class OutputFormat(_Model):
    type: str  # "json_schema"
    schema_: Annotated[dict[str, Any] | None, Field(alias="schema")] = None


class OutputConfig(_Model):
    effort: str | None = None  # how much the model spends; no other provider has its measure
    format: OutputFormat | None = None


class Metadata(_Model):
    user_id: str | None = None


class CountTokensRequest(_Model):
    model: Annotated[str, Field(min_length=1)]
    messages: Annotated[list[MessageParam], Field(min_length=1)]
    system: str | list[TextBlock] | None = None
    tools: list[ToolParam] | None = None
    tool_choice: ToolChoice | None = None
    thinking: ThinkingConfig | None = None
    output_config: OutputConfig | None = None


class MessagesRequest(CountTokensRequest):
    max_tokens: Annotated[int, Field(ge=1, le=MAX_TOKENS_VALUE)]
    stop_sequences: list[str] | None = None
    stream: bool | None = None
    temperature: Annotated[float, Field(ge=0, le=1)] | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    top_k: Annotated[int, Field(ge=0, le=MAX_TOKENS_VALUE)] | None = None
    metadata: Metadata | None = None


def validate(model: type[CountTokensRequest], body: Any) -> Any:
    """The parsed body, or a 400 naming the first offending field as Anthropic does."""
    if not isinstance(body, dict):
        raise InvalidRequestError("The request body must be a JSON object.")
    try:
        parsed = model.model_validate(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        first = most_specific(errors)
        path = field_path(first["loc"], "anthropic")
        message = _message(first, errors, path)
        raise InvalidRequestError(f"{path}: {message}" if path else message, param=path or None) from None
    _check_semantics(parsed)
    return parsed


def _check_semantics(parsed: CountTokensRequest) -> None:
    """What the field types alone do not say, but Anthropic requires."""
    for position, tool in enumerate(parsed.tools or []):
        if tool.type in (None, "custom") and tool.input_schema is None:
            raise _invalid(f"tools.{position}.input_schema", "Field required")
    choice = parsed.tool_choice
    if choice is not None and choice.type == "tool" and not choice.name:
        raise _invalid("tool_choice.name", "Field required")
    thinking = parsed.thinking
    if thinking is not None and thinking.type == "enabled" and thinking.budget_tokens is None:
        raise _invalid("thinking.budget_tokens", "Field required")
    output_format = parsed.output_config.format if parsed.output_config is not None else None
    if output_format is not None:
        if output_format.type != "json_schema":
            raise _invalid("output_config.format.type", "Input should be 'json_schema'")
        if output_format.schema_ is None:
            raise _invalid("output_config.format.schema", "Field required")


def _invalid(path: str, message: str) -> InvalidRequestError:
    return InvalidRequestError(f"{path}: {message}", param=path)


def _message(error: ErrorDetails, errors: list[ErrorDetails], path: str) -> str:
    """Pydantic's message; for a value of the wrong type for every branch of a union (`system`
    is a string or a list), each branch's expectation."""
    if error["type"] in ("model_type", "model_attributes_type", "dict_type"):
        return "Input should be an object"
    if not error["type"].endswith("_type"):
        return error["msg"]
    expected: list[str] = []
    for other in errors:
        if other["type"].endswith("_type") and field_path(other["loc"], "anthropic") == path:
            wanted = other["msg"].removeprefix("Input should be ")
            if wanted not in expected:
                expected.append(wanted)
    return "Input should be " + " or ".join(expected)


def decode_json(raw: bytes) -> Any:
    """The body's JSON, no deeper than the gateway can send on (`api/limits.py`)."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(f"The request body is not valid JSON: {exc}", code="invalid_json") from None
    if isinstance(body, dict):
        check_count(body.get("messages"), "messages")  # before anything walks them
    check_depth(raw, body, lambda loc: field_path(loc, "anthropic"))
    return body
