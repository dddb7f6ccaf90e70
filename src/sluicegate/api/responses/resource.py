"""The `response` object: what the request asked for, echoed, and what the model did.

Field names, order and defaults follow OpenAI's own objects (`temperature: 1.0` when the
client set none, `truncation: "disabled"`...). `output_text` is not among them: OpenAI does
not send it either; the SDKs compute it from the `output` items.
"""

from __future__ import annotations

from typing import Any

from sluicegate.api.responses.request import ResponsesRequest
from sluicegate.core.events import Usage
from sluicegate.errors import GatewayError, InvalidRequestError, RateLimitError


def response_object(
    request: ResponsesRequest, response_id: str, created_at: int, model: str
) -> dict[str, Any]:
    """A response in progress: status `in_progress`, no output and no usage yet (`usage` and
    an unset `user` are left out rather than null, as OpenAI's schema has them)."""
    body: dict[str, Any] = {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": "in_progress",
        "background": False,
        "completed_at": None,
        "error": None,
        "incomplete_details": None,
        "instructions": request.instructions,
        "max_output_tokens": request.max_output_tokens,
        "max_tool_calls": None,
        "model": model,
        "output": [],
        "parallel_tool_calls": request.parallel_tool_calls is not False,
        "previous_response_id": request.previous_response_id,
        "reasoning": request.reasoning,
        "store": request.store,
        "temperature": request.temperature if request.temperature is not None else 1.0,
        "text": request.text,
        "tool_choice": request.tool_choice,
        "tools": request.tools,
        "top_logprobs": request.top_logprobs or 0,
        "top_p": request.top_p if request.top_p is not None else 1.0,
        "truncation": request.truncation,
        "metadata": request.metadata,
    }
    if request.user is not None:
        body["user"] = request.user
    return body


def usage_object(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {
            "cached_tokens": usage.cached_tokens,
            "cache_write_tokens": usage.cache_creation_tokens,
        },
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.total_tokens,
    }


def error_object(error: GatewayError) -> dict[str, Any]:
    """A failed response's `error`: OpenAI's code for it (its enum is short), and the message."""
    if isinstance(error, RateLimitError):
        code = "rate_limit_exceeded"
    elif isinstance(error, InvalidRequestError):
        code = "invalid_prompt"
    else:
        code = "server_error"
    return {"code": code, "message": error.message}
