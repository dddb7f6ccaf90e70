"""The canonical chat request every provider receives."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

Door = Literal["openai", "anthropic", "responses", "completions", "gemini"]


@dataclass(slots=True)
class ChatRequest:
    """A validated chat request in OpenAI's chat vocabulary, the gateway's lingua franca.

    Every front door translates its own format into these fields; providers translate them to
    their upstream's. `source` names the door's wire format and `raw` keeps the client's JSON in
    that format as sent (unknown fields included): a provider whose upstream speaks the same
    format forwards `raw` with only the model swapped, so nothing the gateway does not know
    about is lost (new OpenAI fields, Anthropic thinking signatures and cache controls).
    """

    model: str  # as the client asked for it
    messages: list[dict[str, Any]]
    raw: dict[str, Any]
    source: Door = "openai"
    stream: bool = False
    include_usage: bool = False
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    n: int = 1
    tools: list[dict[str, Any]] | None = None  # OpenAI function tools
    tool_choice: Any = None  # OpenAI's: "auto" | "none" | "required" | {"type": "function", ...}
    parallel_tool_calls: bool | None = None
    response_format: dict[str, Any] | None = None
    logprobs: bool = False
    top_logprobs: int | None = None
    logit_bias: dict[str, float] | None = None
    reasoning_effort: str | None = None  # "minimal" | "low" | "medium" | "high"
    thinking_budget: int | None = None  # Anthropic's budget_tokens, when the client gave one
    user: str | None = None
    metadata: dict[str, Any] | None = None
    upstream_model: str | None = None  # set by routing when a wildcard entry derives it from `model`
    # legacy text completions (`/v1/completions`): the prompts, run as they are (no chat
    # template); choice `i * n + j` is prompt i's j-th. `echo` puts each prompt before its answer.
    prompts: list[str] | None = None
    echo: bool = False
    key_id: str | None = None  # the API key's id, set by the door: the embedded model's queue takes keys in turn
    # the client's protocol headers (`anthropic-beta`) for an upstream speaking the same format
    forward_headers: dict[str, str] = field(default_factory=dict)
    # set by governance for a key with a model list: whether the key may use a model entry
    # (routing asks it before trying a fallback model)
    may_use: Callable[[str], bool] | None = None
