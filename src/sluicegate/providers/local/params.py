"""Which OpenAI request fields the embedded model honours, and a clear 400 for the rest.

The rule for every provider: a parameter it cannot honour is refused, naming it, never
silently dropped. Fields that only describe the request (user, metadata, store...) and do
not change the answer are accepted.
"""

from __future__ import annotations

from typing import Any

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
