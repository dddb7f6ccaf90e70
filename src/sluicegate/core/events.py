"""The canonical stream between providers and front doors.

Every provider turns its upstream's wire format into these events, and every front door
(OpenAI chat chunks, Anthropic messages, OpenAI responses) turns them back into its own wire
format, so a new provider or a new front door is one translation, not one per pair.

The vocabulary is OpenAI's where OpenAI has a word for it (finish reasons, logprobs objects,
usage field names); what other formats carry beyond it (thinking signatures, the matched stop
sequence, the upstream's own stop reason, block boundaries, cache-write tokens) rides along in
optional fields, so a door that speaks the same format as the upstream loses nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class TextDelta:
    text: str
    choice: int = 0
    logprobs: list[dict[str, Any]] | None = None  # OpenAI `logprobs.content` entries for this text


@dataclass(slots=True)
class RefusalDelta:
    """Structured-output refusal text (OpenAI `delta.refusal`), kept apart from the content."""

    text: str
    choice: int = 0
    logprobs: list[dict[str, Any]] | None = None  # OpenAI `logprobs.refusal` entries


@dataclass(slots=True)
class ReasoningDelta:
    """Thinking text streamed beside the answer (`reasoning_content`, Anthropic thinking,
    Gemini thought parts). `signature` carries Anthropic's thinking signature (a delta with
    empty text), `redacted` an opaque redacted-thinking block."""

    text: str
    choice: int = 0
    signature: str | None = None
    redacted: str | None = None


@dataclass(slots=True)
class ToolCallDelta:
    """One fragment of a tool call; `id` and `name` come once, `arguments` in pieces.
    `extra` holds fields of the call beyond id, type and function, sent with its first
    fragment (Gemini's thought signature as `extra_content`, the way Google's own
    OpenAI-compatible endpoint sends it, so clients echo it back)."""

    index: int
    arguments: str = ""
    id: str | None = None
    name: str | None = None
    choice: int = 0
    extra: dict[str, Any] | None = None


@dataclass(slots=True)
class BlockEnd:
    """The upstream closed a content block (Anthropic `content_block_stop`). Doors that have
    blocks close theirs; others ignore it. Without it, a door closes a block when the kind of
    content changes."""

    choice: int = 0


@dataclass(slots=True)
class Passthrough:
    """Fields of an OpenAI delta or choice the gateway has no name for (`annotations`,
    `audio`...), passed on unchanged when the door speaks OpenAI too."""

    delta: dict[str, Any]
    choice_fields: dict[str, Any] = field(default_factory=dict)
    choice: int = 0


@dataclass(slots=True)
class Metadata:
    """The upstream's response metadata: OpenAI `system_fingerprint` and `service_tier`, the
    upstream's own response id, and other top-level fields an OpenAI door passes on."""

    system_fingerprint: str | None = None
    service_tier: str | None = None
    upstream_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Finish:
    """Why one choice ended, in OpenAI's enum: `stop`, `length`, `tool_calls` or
    `content_filter`. `native` is the upstream's own word (`end_turn`, `stop_sequence`...),
    `stop_sequence` the stop string that ended it, when known."""

    reason: str
    choice: int = 0
    stop_sequence: str | None = None
    native: str | None = field(default=None, compare=False)


@dataclass(slots=True)
class Usage:
    """Token counts in OpenAI's terms. `prompt_tokens` includes cached and cache-write tokens;
    `completion_tokens` includes reasoning tokens. `estimated` marks counts the gateway made
    itself because the upstream sent none."""

    prompt_tokens: int
    completion_tokens: int
    details: dict[str, Any] = field(default_factory=dict)  # OpenAI's *_details objects, as sent
    reported_total: int | None = None  # an upstream's own total, when it counts more (reasoning)
    cached_tokens: int = 0
    cache_creation_tokens: int = 0
    reasoning_tokens: int = 0
    estimated: bool = False

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
        details = dict(self.details)
        if self.cached_tokens and "prompt_tokens_details" not in details:
            details["prompt_tokens_details"] = {"cached_tokens": self.cached_tokens}
        if self.reasoning_tokens and "completion_tokens_details" not in details:
            details["completion_tokens_details"] = {"reasoning_tokens": self.reasoning_tokens}
        out.update(details)
        return out


@dataclass(slots=True)
class Started:
    """The provider has committed to an answer (the upstream said 200, the local job passed
    its checks). Failures before it are plain HTTP errors; once it arrives the front door
    sends its first bytes, without waiting for the first token. It names what answered."""

    deployment: str | None = None
    upstream_model: str | None = None
    attempts: int = 1
    model: str | None = None  # the model entry that answered: a fallback's, when one did
    prompt_tokens: int | None = None  # known before generation (the local tokenizer)
    # the upstream's response metadata (system_fingerprint) comes with its first chunk, which had
    # not arrived at the commit: a door whose opening bytes carry it waits for the first events
    metadata_pending: bool = False
    calls_first: bool = False  # the answer is known to open with tool calls (a forced call)
    # with the byte relay (`RawText`): the answer's text as it went out, decoded once at the
    # end (the access log; an estimate of usage when the upstream reported none)
    transcript: Callable[[], list[str]] | None = None


@dataclass(slots=True)
class Seam:
    """Mid-stream fail-over (routing/failover.py) joined two deployments' answers here: the
    first `offset` characters of the answer's text came from `deployment`, which failed, and
    `to` continued the same answer. `usage` is what the failed one read and wrote (estimated
    unless it reported it before dying); `restarted_calls` counts tool calls it had begun,
    which the client never saw and `to` was asked for again. Doors carry the seams in an
    extension field (`sluicegate`) of their last event; governance bills each side at its
    own deployment's price."""

    offset: int
    deployment: str
    to: str
    usage: Usage
    model: str | None = None  # the model entry of `deployment`
    to_model: str | None = None
    upstream_model: str | None = None
    to_upstream_model: str | None = None
    restarted_calls: int = 0
    reason: str = ""  # why the first one stopped

    def to_json(self) -> dict[str, Any]:
        """What a door's extension field shows of it."""
        return {
            "offset": self.offset,
            "from": {"deployment": self.deployment, "model": self.model, "upstream_model": self.upstream_model},
            "to": {"deployment": self.to, "model": self.to_model, "upstream_model": self.to_upstream_model},
            "restarted_tool_calls": self.restarted_calls,
            "reason": self.reason,
        }


def seams_field(seams: list[Seam]) -> dict[str, Any]:
    """The `sluicegate` extension object doors add to their last event after a fail-over."""
    return {"seams": [seam.to_json() for seam in seams]}


@dataclass(slots=True)
class RawText:
    """Pieces of choice 0's text as the upstream wrote them in its chunks: JSON string bodies,
    still escaped, never decoded (the byte relay, `ChatRequest.byte_relay`). Only a door whose
    wire format the upstream speaks asks for them, and writes them into its own chunks as they
    are; the text is decoded only if the gateway needs it (`Started.transcript`)."""

    pieces: list[bytes]


@dataclass(slots=True)
class PromptProgress:
    """How much of a long prompt the model has read (the embedded model reads ~200 tokens/s on
    a small CPU): no door's wire has a field for it, so the gateway writes it in the SSE
    comments it sends while the stream is silent (`: prompt: 2048 of 11482 tokens read`)."""

    done: int
    total: int


Event = (
    Started
    | TextDelta
    | RefusalDelta
    | ReasoningDelta
    | ToolCallDelta
    | BlockEnd
    | Passthrough
    | Metadata
    | Finish
    | Usage
    | PromptProgress
    | Seam
    | RawText
)

# Providers yield events in batches: those that arrived together (one network read, or the
# tokens a busy loop found waiting). A front door writes each batch to the client at once, so
# a burst costs one write instead of one per event.
Batch = list[Event]


class LastBatch(list[Event]):
    """A provider's last batch: the upstream's answer ended with it. A front door may hold its
    bytes for the stream's closing ones (nothing is left to wait for), one write instead of two."""

    __slots__ = ()

FINISH_REASONS = frozenset({"stop", "length", "tool_calls", "content_filter", "function_call"})
