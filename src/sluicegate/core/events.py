"""The canonical stream between providers and front doors.

Every provider turns its upstream's wire format into these events, and every front door
(OpenAI chat chunks today, Anthropic messages later) turns them back into its own wire format,
so a new provider or a new front door is one translation, not one per pair.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class TextDelta:
    text: str
    choice: int = 0


@dataclass(slots=True)
class ReasoningDelta:
    """Thinking text some upstreams stream beside the answer (`reasoning_content`)."""

    text: str
    choice: int = 0


@dataclass(slots=True)
class ToolCallDelta:
    """One fragment of a tool call; `id` and `name` come once, `arguments` in pieces."""

    index: int
    arguments: str = ""
    id: str | None = None
    name: str | None = None
    choice: int = 0


@dataclass(slots=True)
class Finish:
    """Why one choice ended: `stop`, `length`, `tool_calls` or `content_filter`."""

    reason: str
    choice: int = 0


@dataclass(slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    details: dict[str, Any] = field(default_factory=dict)
    reported_total: int | None = None  # an upstream's own total, when it counts more (reasoning)

    @property
    def total_tokens(self) -> int:
        if self.reported_total is not None:
            return self.reported_total
        return self.prompt_tokens + self.completion_tokens

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }
        out.update(self.details)
        return out


@dataclass(slots=True)
class Started:
    """The provider has committed to an answer (the upstream said 200, the local job passed
    its checks). Failures before it are plain HTTP errors; once it arrives the front door
    sends its first bytes, without waiting for the first token."""


Event = Started | TextDelta | ReasoningDelta | ToolCallDelta | Finish | Usage

# Providers yield events in batches: those that arrived together (one network read, or the
# tokens a busy loop found waiting). A front door writes each batch to the client at once, so
# a burst costs one write instead of one per event.
Batch = list[Event]

FINISH_REASONS = frozenset({"stop", "length", "tool_calls", "content_filter", "function_call"})
