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
        "response_format", "logprobs", "top_logprobs", "logit_bias", "tools", "tool_choice", "parallel_tool_calls",
    }
)
# accepted because they do not change what the model writes
DESCRIPTIVE = frozenset(
    {"user", "metadata", "store", "service_tier", "safety_identifier", "prompt_cache_key"}
)
# OpenAI features a small local text model cannot provide
UNSUPPORTED = {
    "functions": "takes function tools as 'tools', not the deprecated 'functions'",
    "function_call": "takes 'tool_choice', not the deprecated 'function_call'",
    "reasoning_effort": "is not a reasoning model",
    "audio": "does not produce audio",
    "modalities": "only produces text",
    "prediction": "does not support predicted outputs",
    "web_search_options": "cannot search the web",
    "verbosity": "does not support verbosity",
}


# legacy completions (`/v1/completions`) on the embedded model
LEGACY_HONOURED = frozenset(
    {
        "model", "prompt", "stream", "stream_options", "max_tokens", "temperature", "top_p", "stop", "seed",
        "n", "frequency_penalty", "presence_penalty", "logprobs", "logit_bias", "echo",
    }
)
LEGACY_UNSUPPORTED = {
    "suffix": "does not fill in the middle",
    "best_of": "generates each choice once: 'best_of' must be 1",
}


def check_legacy_params(body: dict[str, Any], model: str) -> None:
    for name, value in body.items():
        if name in LEGACY_HONOURED or name in DESCRIPTIVE or value is None:
            continue
        if (name == "suffix" and value == "") or (name == "best_of" and value == 1):
            continue
        if name in LEGACY_UNSUPPORTED:
            raise InvalidRequestError(
                f"The model `{model}` {LEGACY_UNSUPPORTED[name]}: remove '{name}' or choose another model.",
                param=name,
                code="unsupported_parameter",
            )
        raise InvalidRequestError(
            f"Unrecognized request argument supplied: {name}", param=name, code="unknown_parameter"
        )
    if body.get("echo") and body.get("logprobs") is not None:
        raise InvalidRequestError(
            f"The model `{model}` cannot give the logprobs of an echoed prompt: use 'echo' or 'logprobs'.",
            param="echo",
            code="unsupported_parameter",
        )


def check_params(body: dict[str, Any], model: str) -> None:
    for name, value in body.items():
        if name in HONOURED or name in DESCRIPTIVE or value is None:
            continue
        if name in UNSUPPORTED:
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
    "anthropic": {"reasoning_effort": "thinking"},
    "responses": {"reasoning_effort": "reasoning.effort"},
    "gemini": {"reasoning_effort": "generationConfig.thinkingConfig"},
}


def check_request(request: ChatRequest, model: str) -> None:
    """The same rule for every door: OpenAI bodies are checked field by field, other doors'
    requests by the canonical fields their translation filled in."""
    if request.source == "openai":
        check_params(request.raw, model)
        return
    if request.source == "completions":
        check_legacy_params(request.raw, model)
        return
    names = _DOOR_NAMES.get(request.source, {})
    if request.reasoning_effort is not None or request.thinking_budget is not None:
        field = names.get("reasoning_effort", "reasoning_effort")
        raise InvalidRequestError(
            f"The model `{model}` {UNSUPPORTED['reasoning_effort']}: remove '{field}' or choose another model.",
            param=field,
            code="unsupported_parameter",
        )


def check_context(prompt_tokens: int, n_ctx: int) -> None:
    """A prompt that leaves no room to answer is the client's 400, naming both numbers."""
    if prompt_tokens >= n_ctx:
        raise InvalidRequestError(
            f"This model's maximum context length is {n_ctx} tokens. However, your messages"
            f" resulted in {prompt_tokens} tokens.",
            param="messages",
            code="context_length_exceeded",
        )
