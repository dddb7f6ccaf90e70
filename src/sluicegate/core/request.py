"""The canonical chat request every provider receives."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

# The wire format a client's body is written in (which door it came by is the api's business):
# OpenAI chat completions, Anthropic Messages, OpenAI Responses, OpenAI legacy completions,
# Gemini generateContent.
WireFormat = Literal[
    "openai_chat", "anthropic_messages", "openai_responses", "openai_completions", "gemini_generate_content"
]


@dataclass(frozen=True, slots=True)
class NativeBody:
    """The client's body for an upstream that takes its wire format as it is: forwarded with
    only the model swapped, so nothing the gateway does not know about is lost (new OpenAI
    fields, Anthropic thinking signatures and cache controls). Routing attaches it to the
    request only for a provider that declares `format` among its `native_formats`."""

    format: WireFormat
    body: dict[str, Any]
    headers: dict[str, str]  # the client's protocol headers (`anthropic-beta`)


@dataclass(slots=True)
class ChatRequest:
    """A validated chat request in OpenAI's chat vocabulary, the gateway's lingua franca.

    Every front door translates its own format into these fields; providers translate them to
    their upstream's. `raw` keeps the client's JSON as sent (unknown fields included), in the
    wire format `wire_format`; a provider never asks which format that is: it gets
    `native_body`, set by routing when the provider takes that format as it is, or None.
    """

    model: str  # as the client asked for it
    messages: list[dict[str, Any]]
    raw: dict[str, Any]
    wire_format: WireFormat = "openai_chat"
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
    upstream_model: str | None = None  # the model entry's decision when a wildcard derives it from `model`
    # legacy text completions (`/v1/completions`): the prompts, run as they are (no chat
    # template); choice `i * n + j` is prompt i's j-th. `echo` puts each prompt before its answer.
    prompts: list[str] | None = None
    echo: bool = False
    key_id: str | None = None  # the API key's id, set by the door: the embedded model's queue takes keys in turn
    # the client's protocol headers (`anthropic-beta`) for an upstream speaking the same format
    forward_headers: dict[str, str] = field(default_factory=dict)
    # what the client's wire format calls canonical fields it names differently
    # ({"reasoning_effort": "thinking"}), so a refusal names the field the client sent
    param_names: dict[str, str] = field(default_factory=dict)
    # the client's body for a provider that takes its wire format as it is (set by routing)
    native_body: NativeBody | None = None
    # set by governance for a key with a model list: whether the key may use a model entry
    # (routing asks it before trying a fallback model)
    may_use: Callable[[str], bool] | None = None
    # the last message is the assistant's answer so far, to be continued, not answered
    # (mid-stream fail-over, routing/failover.py): sent only to providers that can continue
    continue_final: bool = False
    # the door's own wire format, when it takes pieces of a streamed answer as the upstream
    # wrote them (`RawText`) where the upstream speaks it: set by serving, kept by routing only
    # for providers that declare it among their `relay_formats` (the byte relay)
    byte_relay: WireFormat | None = None


def native_body_for(request: ChatRequest, formats: frozenset[WireFormat]) -> NativeBody | None:
    """The client's body, if `formats` (a provider's native formats) holds its wire format."""
    if request.wire_format not in formats or request.continue_final:
        return None  # a continuation is built from the typed fields (the client's body lacks it)
    return NativeBody(request.wire_format, request.raw, request.forward_headers)


def relay_for(request: ChatRequest, formats: frozenset[WireFormat]) -> WireFormat | None:
    """The byte relay the door asked for, if `formats` (a provider's relay formats) holds it."""
    relay = request.byte_relay
    if relay is None or relay not in formats or request.continue_final:
        return None
    return relay
