"""Which OpenAI request fields the embedded model honours, and a clear 400 for the rest.

The rule for every provider: a parameter it cannot honour is refused, naming it, never
silently dropped. Fields that only describe the request (user, metadata, store...) and do
not change the answer are accepted.
"""

from __future__ import annotations

from typing import Any

from sluicegate.core.request import ChatRequest
from sluicegate.errors import InvalidRequestError

HONOURED = frozenset(
    {
        "model", "messages", "stream", "stream_options", "max_tokens", "max_completion_tokens",
        "temperature", "top_p", "stop", "seed", "n", "frequency_penalty", "presence_penalty",
        "response_format", "logprobs", "top_logprobs", "logit_bias",
    }
)
# accepted because they do not change what the model writes
DESCRIPTIVE = frozenset(
    {"user", "metadata", "store", "service_tier", "safety_identifier", "prompt_cache_key", "parallel_tool_calls"}
)
# OpenAI features a small local text model cannot provide
UNSUPPORTED = {
    "tools": "does not support tools",
    "tool_choice": "does not support tools",
    "functions": "does not support function calling",
    "function_call": "does not support function calling",
    "reasoning_effort": "is not a reasoning model",
    "audio": "does not produce audio",
    "modalities": "only produces text",
    "prediction": "does not support predicted outputs",
    "web_search_options": "cannot search the web",
    "verbosity": "does not support verbosity",
}


def check_params(body: dict[str, Any], model: str) -> None:
    for name, value in body.items():
        if name in HONOURED or name in DESCRIPTIVE or value is None:
            continue
        if name in UNSUPPORTED:
            if name == "tool_choice" and value == "none":
                continue
            if name == "tools" and (body.get("tool_choice") == "none" or value == []):
                continue
            if name == "modalities" and value == ["text"]:
                continue
            raise InvalidRequestError(
                f"The model `{model}` {UNSUPPORTED[name]}: remove '{name}' or choose another model.",
                param=name,
                code="unsupported_parameter",
            )
        raise InvalidRequestError(
            f"Unrecognized request argument supplied: {name}", param=name, code="unknown_parameter"
        )


# what each door calls the canonical fields, so a refusal names the field the client sent
_DOOR_NAMES = {
    "anthropic": {"reasoning_effort": "thinking", "tools": "tools"},
    "responses": {"reasoning_effort": "reasoning.effort", "tools": "tools"},
}


def check_request(request: ChatRequest, model: str) -> None:
    """The same rule for every door: OpenAI bodies are checked field by field, other doors'
    requests by the canonical fields their translation filled in."""
    if request.source == "openai":
        check_params(request.raw, model)
        return
    names = _DOOR_NAMES.get(request.source, {})
    if request.tools and request.tool_choice != "none":
        raise InvalidRequestError(
            f"The model `{model}` {UNSUPPORTED['tools']}: remove '{names.get('tools', 'tools')}' or choose another model.",
            param=names.get("tools", "tools"),
            code="unsupported_parameter",
        )
    if request.reasoning_effort is not None or request.thinking_budget is not None:
        field = names.get("reasoning_effort", "reasoning_effort")
        raise InvalidRequestError(
            f"The model `{model}` {UNSUPPORTED['reasoning_effort']}: remove '{field}' or choose another model.",
            param=field,
            code="unsupported_parameter",
        )
