"""The canonical request -> an OpenAI chat-completions body.

A request carrying the client's OpenAI body (`native_body`) has it forwarded as sent (unknown
fields included) with only the model swapped; any other is built from the typed fields.
"""

from __future__ import annotations

from typing import Any

from sluicegate.core.request import ChatRequest

_OPTIONAL_FIELDS = (
    "temperature",
    "top_p",
    "frequency_penalty",
    "presence_penalty",
    "seed",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
    "top_logprobs",
    "logit_bias",
    "reasoning_effort",
    "user",
    "metadata",
)


def openai_body(request: ChatRequest, upstream_model: str, stream: bool) -> dict[str, Any]:
    if request.native_body is not None:
        body: dict[str, Any] = dict(request.native_body.body)
        if request.max_tokens is not None and "max_tokens" not in body and "max_completion_tokens" not in body:
            body["max_tokens"] = request.max_tokens  # the model entry's default cap
    else:
        body = {"messages": request.messages}
        for name in _OPTIONAL_FIELDS:
            value = getattr(request, name)
            if value is not None:
                body[name] = value
        if request.max_tokens is not None:
            body["max_completion_tokens"] = request.max_tokens
        if request.stop:
            body["stop"] = request.stop
        if request.n != 1:
            body["n"] = request.n
        if request.logprobs:
            body["logprobs"] = True
    if request.continue_final:
        # vLLM's names (llama.cpp's server continues a trailing assistant message by itself)
        body["continue_final_message"] = True
        body["add_generation_prompt"] = False
    body["model"] = upstream_model
    body["stream"] = stream
    if stream:
        options = dict(body.get("stream_options") or {})
        options["include_usage"] = True
        body["stream_options"] = options
    else:
        body.pop("stream_options", None)
    return body
