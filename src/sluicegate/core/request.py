"""The canonical chat request every provider receives."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class ChatRequest:
    """A validated chat request in OpenAI's vocabulary, the gateway's lingua franca.

    `body` keeps the client's JSON as sent (unknown fields included) so OpenAI-compatible
    upstreams receive everything; the typed fields are what other providers translate.
    """

    model: str
    messages: list[dict[str, Any]]
    body: dict[str, Any]
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
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None
    response_format: dict[str, Any] | None = None
