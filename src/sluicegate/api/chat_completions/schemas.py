"""The request body of `POST /v1/chat/completions`, validated as strictly as OpenAI does.

Unknown top-level fields are kept (`extra="allow"`) and forwarded to OpenAI-compatible
upstreams. A validation failure names the offending field in `param`, as OpenAI does.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails

from sluicegate.api.limits import MAX_TOKENS_VALUE, check_count, check_depth
from sluicegate.core.request import ChatRequest
from sluicegate.errors import InvalidRequestError


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


_SCALAR_LABELS = frozenset({"str", "int", "float", "bool", "none"})


def _is_branch_label(item: str) -> bool:
    """Pydantic's union-branch labels (`str`, `list[str]`, `constrained-int`, `ContentPart`...),
    which are not field names; real fields (`stream`, `stop`...) may start like one."""
    return item in _SCALAR_LABELS or "[" in item or "-" in item or item[:1].isupper()


def _param(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif not _is_branch_label(item):
            parts.append(item)
    return ".".join(parts)


def _most_specific(errors: list[ErrorDetails]) -> ErrorDetails:
    """The error to report: of the first failing field's errors (a union gives one per branch),
    a real constraint or a missing field beats "wrong type for this branch", deeper beats shallower."""
    field = errors[0]["loc"][:1]
    same_field = [error for error in errors if error["loc"][:1] == field]
    return min(same_field, key=lambda error: (error["type"].endswith("_type"), -len(error["loc"])))


def parse_chat_request(body: Any) -> ChatRequest:
    """Validate a decoded JSON body into the canonical request, or raise a 400."""
    if not isinstance(body, dict):
        raise InvalidRequestError("The request body must be a JSON object.")
    check_count(body.get("messages"), "messages")
    try:
        parsed = ChatCompletionRequest.model_validate(body)
    except ValidationError as exc:
        first = _most_specific(exc.errors(include_url=False))
        param = _param(tuple(first["loc"]))
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
        source="openai",
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
    check_depth(raw, body, _param)
    return body
