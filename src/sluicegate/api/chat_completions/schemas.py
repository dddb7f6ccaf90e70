"""The request body of `POST /v1/chat/completions`, validated as strictly as OpenAI does.

Unknown top-level fields are kept (`extra="allow"`) and forwarded to OpenAI-compatible
upstreams. A validation failure names the offending field in `param`, as OpenAI does.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sluicegate.api.limits import MAX_TOKENS_VALUE, check_count, check_depth
from sluicegate.core.request import ChatRequest
from sluicegate.errors import InvalidRequestError
from sluicegate.field_paths import field_path, most_specific


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    type: str


class Message(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    include_usage: bool | None = None


class FunctionDefinition(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    name: str


class Tool(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    type: str
    function: FunctionDefinition | None = None


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    model: Annotated[str, Field(min_length=1)]
    messages: Annotated[list[Message], Field(min_length=1)]
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    max_tokens: Annotated[int, Field(ge=1, le=MAX_TOKENS_VALUE)] | None = None
    max_completion_tokens: Annotated[int, Field(ge=1, le=MAX_TOKENS_VALUE)] | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    frequency_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None
    presence_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None
    stop: str | Annotated[list[str], Field(max_length=4)] | None = None
    seed: Annotated[int, Field(ge=-(2**63), lt=2**63)] | None = None
    n: Annotated[int, Field(ge=1, le=128)] | None = None
    tools: list[Tool] | None = None
    tool_choice: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    logprobs: bool | None = None
    top_logprobs: Annotated[int, Field(ge=0, le=20)] | None = None
    logit_bias: dict[str, Annotated[float, Field(ge=-100, le=100)]] | None = None
    reasoning_effort: str | None = None
    user: str | None = None
    metadata: dict[str, str] | None = None


def parse_chat_request(body: Any) -> ChatRequest:
    """Validate a decoded JSON body into the canonical request, or raise a 400."""
    if not isinstance(body, dict):
        raise InvalidRequestError("The request body must be a JSON object.")
    check_count(body.get("messages"), "messages")
    try:
        parsed = ChatCompletionRequest.model_validate(body)
    except ValidationError as exc:
        first = most_specific(exc.errors(include_url=False))
        param = field_path(first["loc"], "openai")
        missing = first["type"] == "missing"
        if missing:
            message = f"Missing required parameter: '{param}'."
        else:
            message = f"Invalid value for '{param}': {first['msg']}." if param else first["msg"]
        raise InvalidRequestError(
            message,
            param=param or None,
            code="missing_required_parameter" if missing else "invalid_value",
        ) from None
    if parsed.stream_options is not None and not parsed.stream:
        raise InvalidRequestError(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            param="stream_options",
            code="invalid_value",
        )
    if parsed.top_logprobs is not None and not parsed.logprobs:
        raise InvalidRequestError(
            "'top_logprobs' requires 'logprobs' to be true.", param="top_logprobs", code="invalid_value"
        )
    stop = [parsed.stop] if isinstance(parsed.stop, str) else list(parsed.stop or [])
    return ChatRequest(
        model=parsed.model,
        messages=body["messages"],
        raw=body,
        wire_format="openai_chat",
        stream=bool(parsed.stream),
        include_usage=bool(parsed.stream_options and parsed.stream_options.include_usage),
        max_tokens=parsed.max_completion_tokens or parsed.max_tokens,
        temperature=parsed.temperature,
        top_p=parsed.top_p,
        frequency_penalty=parsed.frequency_penalty,
        presence_penalty=parsed.presence_penalty,
        stop=stop,
        seed=parsed.seed,
        n=parsed.n or 1,
        tools=body.get("tools"),
        tool_choice=parsed.tool_choice,
        response_format=parsed.response_format,
        parallel_tool_calls=parsed.parallel_tool_calls,
        logprobs=bool(parsed.logprobs),
        top_logprobs=parsed.top_logprobs,
        logit_bias=parsed.logit_bias,
        reasoning_effort=parsed.reasoning_effort,
        user=parsed.user,
        metadata=parsed.metadata,
    )


def decode_json(raw: bytes) -> Any:
    """The body's JSON, no deeper than the gateway can send on (`api/limits.py`)."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(
            "We could not parse the JSON body of your request. (HINT: This likely means you aren't"
            " using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was"
            f" sent was not valid JSON: {exc})",
            code="invalid_json",
        ) from None
    if isinstance(body, dict):
        check_count(body.get("messages"), "messages")  # before anything walks them
    check_depth(raw, body, lambda loc: field_path(loc, "openai"))
    return body
