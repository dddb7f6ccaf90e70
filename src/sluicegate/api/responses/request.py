"""The body of `POST /v1/responses` -> a validated request, and then the canonical ChatRequest.

Parsing happens before anything is looked up, so a malformed body is a 400 naming the field
before the store or a model is touched. The chat request is made afterwards, once the stored
conversation a `previous_response_id` continues is known: its items lead the new input.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sluicegate.api.limits import MAX_TOKENS_VALUE, check_count
from sluicegate.api.responses.checks import (
    invalid_type,
    invalid_value,
    missing,
    one_of,
    optional_bool,
    optional_dict,
    optional_int,
    optional_list,
    optional_number,
    optional_str,
    required_str,
    unsupported,
)
from sluicegate.api.responses.items import normalize_input, to_messages
from sluicegate.api.responses.tools import flat_name, parse_tools
from sluicegate.core.request import ChatRequest
from sluicegate.errors import InvalidRequestError

_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")
_TOOL_CHOICES = ("auto", "none", "required")
LOGPROBS_INCLUDE = "message.output_text.logprobs"

# Fields that change what OpenAI would do in ways sluicegate cannot imitate: refused, not ignored.
_REFUSED = {
    "conversation": "Conversations are not supported; continue a response with 'previous_response_id'.",
    "prompt": "Stored prompt templates are not supported; send 'instructions' and 'input'.",
    "moderation": "Moderation policies are not supported: sluicegate runs no moderation model.",
}
# The top-level fields OpenAI documents (the openai SDK's ResponseCreateParams), and
# `client_metadata`, which OpenAI's own Codex CLI sends and OpenAI accepts. Any other field is
# refused as the chat door's embedded model refuses one: nothing here would act on it.
KNOWN_FIELDS = frozenset(
    {
        "background", "client_metadata", "context_management", "conversation", "include", "input",
        "instructions", "max_output_tokens", "max_tool_calls", "metadata", "model", "moderation",
        "parallel_tool_calls", "previous_response_id", "prompt", "prompt_cache_key",
        "prompt_cache_options", "prompt_cache_retention", "reasoning", "safety_identifier",
        "service_tier", "store", "stream", "stream_options", "temperature", "text", "tool_choice",
        "tools", "top_logprobs", "top_p", "truncation", "user",
    }
)


@dataclass(slots=True)
class ResponsesRequest:
    body: dict[str, Any]  # the client's JSON as sent
    model: str
    input_items: list[dict[str, Any]]
    instructions: str | None = None
    stream: bool = False
    store: bool = True
    background: bool = False  # generated detached from the connection (api/responses/background.py)
    previous_response_id: str | None = None
    max_output_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    tools: list[dict[str, Any]] = field(default_factory=list)  # as the response object echoes them
    chat_tools: list[dict[str, Any]] = field(default_factory=list)
    tool_choice: Any = "auto"
    chat_tool_choice: Any = None
    namespaced: dict[str, tuple[str, str]] = field(default_factory=dict)  # offered name -> (namespace, name)
    hosted_tools: list[tuple[str, str]] = field(default_factory=list)  # (param, type): left out or refused
    parallel_tool_calls: bool | None = None
    text: dict[str, Any] = field(default_factory=lambda: {"format": {"type": "text"}})
    response_format: dict[str, Any] | None = None
    reasoning: dict[str, Any] = field(default_factory=lambda: {"effort": None, "summary": None})
    metadata: dict[str, str] = field(default_factory=dict)
    user: str | None = None
    logprobs: bool = False
    top_logprobs: int | None = None
    truncation: str = "disabled"

    def chat_request(self, history: list[dict[str, Any]]) -> ChatRequest:
        """The canonical request: the continued conversation's items, then this input."""
        messages = to_messages([*history, *self.input_items], self.instructions)
        if not any(message["role"] != "system" for message in messages):
            raise missing("input")
        return ChatRequest(
            model=self.model,
            messages=messages,
            raw=self.body,
            wire_format="openai_responses",
            param_names={"reasoning_effort": "reasoning.effort"},
            stream=self.stream,
            include_usage=True,
            max_tokens=self.max_output_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            tools=self.chat_tools or None,
            tool_choice=self.chat_tool_choice if self.chat_tools else None,
            parallel_tool_calls=self.parallel_tool_calls if self.chat_tools else None,
            response_format=self.response_format,
            logprobs=self.logprobs,
            top_logprobs=self.top_logprobs if self.logprobs else None,
            reasoning_effort=self.reasoning["effort"],
            user=self.user,
        )


def parse_responses_request(body: Any) -> ResponsesRequest:
    if not isinstance(body, dict):
        raise InvalidRequestError("The request body must be a JSON object.")
    unknown = next((name for name in body if name not in KNOWN_FIELDS), None)
    if unknown is not None:
        raise InvalidRequestError(
            f"Unrecognized request argument supplied: {unknown}", param=unknown, code="unknown_parameter"
        )
    for name, reason in _REFUSED.items():
        if body.get(name):
            raise unsupported(name, reason)
    check_count(body.get("input"), "input")
    request = ResponsesRequest(
        body=body,
        model=_model(body),
        input_items=normalize_input(body.get("input")),
        instructions=optional_str(body, "instructions"),
        stream=bool(optional_bool(body, "stream")),
        store=optional_bool(body, "store") is not False,
        background=bool(optional_bool(body, "background")),
        previous_response_id=optional_str(body, "previous_response_id"),
        max_output_tokens=optional_int(body, "max_output_tokens", 1, MAX_TOKENS_VALUE),
        temperature=optional_number(body, "temperature", 0, 2),
        top_p=optional_number(body, "top_p", 0, 1),
        parallel_tool_calls=optional_bool(body, "parallel_tool_calls"),
        user=optional_str(body, "user"),
        top_logprobs=optional_int(body, "top_logprobs", 0, 20),
        truncation=one_of(body, "truncation", ("auto", "disabled")) or "disabled",
        metadata=_metadata(body),
    )
    if "input" not in body and request.previous_response_id is None:
        raise missing("input")
    if request.background and not request.store:
        raise InvalidRequestError(
            "Background mode requires 'store' to be true: a background response is read back later.",
            param="background",
            code="invalid_value",
        )
    include = optional_list(body, "include") or []
    if not all(isinstance(entry, str) for entry in include):
        raise invalid_type("include", "an array of strings", include)
    request.logprobs = LOGPROBS_INCLUDE in include
    _tools(body, request)
    _text(body, request)
    _reasoning(body, request)
    return request


def _model(body: dict[str, Any]) -> str:
    model = required_str(body, "model")
    if not model:
        raise invalid_value("model", "the model name must not be empty.")
    return model


def _metadata(body: dict[str, Any]) -> dict[str, str]:
    metadata = optional_dict(body, "metadata") or {}
    if len(metadata) > 16:
        raise invalid_value("metadata", "at most 16 keys are allowed.")
    for key, value in metadata.items():
        if len(key) > 64 or not isinstance(value, str) or len(value) > 512:
            raise invalid_value(
                f"metadata.{key}",
                "metadata keys are strings of at most 64 characters, values of at most 512.",
            )
    return metadata


def _tools(body: dict[str, Any], request: ResponsesRequest) -> None:
    tools = parse_tools(body)
    request.tools = tools.echoed
    request.chat_tools = tools.chat
    request.namespaced = tools.namespaced
    request.hosted_tools = tools.hosted
    choice = body.get("tool_choice")
    if choice is None:
        request.chat_tool_choice = None
        return
    request.tool_choice = choice
    if isinstance(choice, str):
        one_of(body, "tool_choice", _TOOL_CHOICES)
        request.chat_tool_choice = choice
    elif isinstance(choice, dict):
        request.chat_tool_choice = _chat_tool_choice(choice)
    else:
        raise invalid_type("tool_choice", "a string or an object", choice)


def _chat_tool_choice(choice: dict[str, Any]) -> dict[str, Any]:
    kind = choice.get("type")
    if kind == "function":
        name = required_str(choice, "name", "tool_choice.name")
        namespace = optional_str(choice, "namespace", "tool_choice.namespace")
        return {"type": "function", "function": {"name": flat_name(namespace, name)}}
    if kind == "allowed_tools":
        mode = one_of(choice, "mode", ("auto", "required"), "tool_choice.mode") or "auto"
        tools = []
        for index, tool in enumerate(optional_list(choice, "tools", "tool_choice.tools") or []):
            param = f"tool_choice.tools[{index}]"
            if not isinstance(tool, dict) or tool.get("type") != "function":
                raise unsupported(param, "Only function tools can be allowed.")
            name = required_str(tool, "name", f"{param}.name")
            namespace = optional_str(tool, "namespace", f"{param}.namespace")
            tools.append({"type": "function", "function": {"name": flat_name(namespace, name)}})
        return {"type": "allowed_tools", "allowed_tools": {"mode": mode, "tools": tools}}
    raise unsupported(
        "tool_choice.type",
        f"tool_choice of type '{kind}' is not supported: only 'function' and 'allowed_tools' choices"
        " (or 'auto', 'none', 'required').",
    )


def _text(body: dict[str, Any], request: ResponsesRequest) -> None:
    text = optional_dict(body, "text")
    if text is None:
        return
    request.text = dict(text)
    fmt = optional_dict(text, "format", "text.format")
    if fmt is None:
        request.text["format"] = {"type": "text"}
        return
    kind = one_of(fmt, "type", ("text", "json_object", "json_schema"), "text.format.type")
    if kind is None:
        raise missing("text.format.type")
    if kind == "json_object":
        request.response_format = {"type": "json_object"}
    elif kind == "json_schema":
        schema = optional_dict(fmt, "schema", "text.format.schema")
        if schema is None:
            raise missing("text.format.schema")
        json_schema: dict[str, Any] = {
            "name": required_str(fmt, "name", "text.format.name"),
            "schema": schema,
        }
        description = optional_str(fmt, "description", "text.format.description")
        if description is not None:
            json_schema["description"] = description
        strict = fmt.get("strict")
        if strict is not None:
            if not isinstance(strict, bool):
                raise invalid_type("text.format.strict", "a boolean", strict)
            json_schema["strict"] = strict
        request.response_format = {"type": "json_schema", "json_schema": json_schema}


def _reasoning(body: dict[str, Any], request: ResponsesRequest) -> None:
    reasoning = optional_dict(body, "reasoning")
    if reasoning is None:
        return
    effort = one_of(reasoning, "effort", _EFFORTS, "reasoning.effort")
    summary = one_of(reasoning, "summary", ("auto", "concise", "detailed"), "reasoning.summary")
    request.reasoning = {"effort": effort, "summary": summary}
