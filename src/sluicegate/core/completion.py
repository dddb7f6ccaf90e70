"""A whole (non-streamed) completion, and how to gather one from the event stream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from sluicegate.core.events import (
    Batch,
    Event,
    Finish,
    Metadata,
    Passthrough,
    ReasoningDelta,
    RefusalDelta,
    Started,
    TextDelta,
    ToolCallDelta,
    Usage,
)


@dataclass(slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str
    extra: dict[str, Any] | None = None  # see ToolCallDelta.extra


@dataclass(slots=True)
class Choice:
    index: int
    content: str | None = None
    refusal: str | None = None
    reasoning: str | None = None
    reasoning_signature: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str | None = None
    stop_sequence: str | None = None
    native_finish: str | None = None
    logprobs: dict[str, Any] | None = None  # OpenAI's choice.logprobs object
    extra: dict[str, Any] = field(default_factory=dict)  # message fields the gateway does not know
    choice_extra: dict[str, Any] = field(default_factory=dict)  # choice fields likewise


@dataclass(slots=True)
class Completion:
    choices: list[Choice]
    usage: Usage | None = None
    metadata: Metadata | None = None
    origin: Started | None = None  # which deployment answered, after how many attempts

    @property
    def system_fingerprint(self) -> str | None:
        return self.metadata.system_fingerprint if self.metadata else None


class _Fold:
    """Accumulates events per choice into whole messages."""

    def __init__(self) -> None:
        self.choices: dict[int, Choice] = {}
        self.texts: dict[int, list[str]] = {}
        self.refusals: dict[int, list[str]] = {}
        self.reasoning: dict[int, list[str]] = {}
        self.calls: dict[int, dict[int, list[Any]]] = {}
        self.logprobs: dict[int, dict[str, list[Any]]] = {}
        self.usage: Usage | None = None
        self.metadata: Metadata | None = None
        self.origin: Started | None = None

    def _choice(self, i: int) -> Choice:
        if i not in self.choices:
            self.choices[i] = Choice(index=i)
        return self.choices[i]

    def add(self, event: Event) -> None:
        if isinstance(event, TextDelta):
            self._choice(event.choice)
            self.texts.setdefault(event.choice, []).append(event.text)
            if event.logprobs is not None:
                self.logprobs.setdefault(event.choice, {}).setdefault("content", []).extend(event.logprobs)
        elif isinstance(event, RefusalDelta):
            self._choice(event.choice)
            self.refusals.setdefault(event.choice, []).append(event.text)
            if event.logprobs is not None:
                self.logprobs.setdefault(event.choice, {}).setdefault("refusal", []).extend(event.logprobs)
        elif isinstance(event, ReasoningDelta):
            choice = self._choice(event.choice)
            self.reasoning.setdefault(event.choice, []).append(event.text)
            if event.signature:
                choice.reasoning_signature = event.signature
        elif isinstance(event, ToolCallDelta):
            self._choice(event.choice)
            slot = self.calls.setdefault(event.choice, {}).setdefault(event.index, ["", "", [], None])
            slot[0] = event.id or slot[0]
            slot[1] = event.name or slot[1]
            slot[2].append(event.arguments)
            if event.extra:
                slot[3] = {**(slot[3] or {}), **event.extra}
        elif isinstance(event, Finish):
            choice = self._choice(event.choice)
            choice.finish_reason = event.reason
            choice.stop_sequence = event.stop_sequence
            choice.native_finish = event.native
        elif isinstance(event, Passthrough):
            choice = self._choice(event.choice)
            for key, value in event.delta.items():
                choice.extra[key] = _merge(choice.extra.get(key), value)
            choice.choice_extra.update(event.choice_fields)
        elif isinstance(event, Usage):
            self.usage = event
        elif isinstance(event, Metadata):
            self.metadata = event
        elif isinstance(event, Started):
            self.origin = event

    def completion(self) -> Completion:
        for i, c in self.choices.items():
            if i in self.texts:
                c.content = "".join(self.texts[i])
            if i in self.refusals:
                c.refusal = "".join(self.refusals[i])
            if i in self.reasoning:
                c.reasoning = "".join(self.reasoning[i])
            if i in self.logprobs:
                c.logprobs = {"content": None, "refusal": None, **self.logprobs[i]}
            for _, (call_id, name, parts, extra) in sorted(self.calls.get(i, {}).items()):
                c.tool_calls.append(ToolCall(id=call_id, name=name, arguments="".join(parts), extra=extra))
            if c.finish_reason is None:
                c.finish_reason = "tool_calls" if c.tool_calls else "stop"
        return Completion(
            choices=[self.choices[i] for i in sorted(self.choices)],
            usage=self.usage,
            metadata=self.metadata,
            origin=self.origin,
        )


def _merge(old: Any, new: Any) -> Any:
    """Unknown delta fields streamed in pieces: strings concatenate, lists extend."""
    if isinstance(old, str) and isinstance(new, str):
        return old + new
    if isinstance(old, list) and isinstance(new, list):
        return old + new
    return new


async def collect(batches: AsyncIterator[Batch]) -> Completion:
    """Fold a canonical stream into one completion (used where an upstream only streams)."""
    fold = _Fold()
    async for batch in batches:
        for event in batch:
            fold.add(event)
    return fold.completion()


def fold_events(events: Batch) -> Completion:
    fold = _Fold()
    for event in events:
        fold.add(event)
    return fold.completion()


def completion_events(completion: Completion) -> Batch:
    """The canonical events of a whole completion, for upstreams that answered at once and for
    doors that stream an answer their provider gave whole."""
    events: Batch = []
    if completion.metadata is not None:
        events.append(completion.metadata)
    for choice in completion.choices:
        if choice.reasoning or choice.reasoning_signature:
            events.append(
                ReasoningDelta(choice.reasoning or "", choice.index, signature=choice.reasoning_signature)
            )
        logprobs = choice.logprobs or {}
        if choice.content:
            events.append(TextDelta(choice.content, choice.index, logprobs.get("content")))
        if choice.refusal:
            events.append(RefusalDelta(choice.refusal, choice.index, logprobs.get("refusal")))
        if choice.extra or choice.choice_extra:
            events.append(Passthrough(dict(choice.extra), dict(choice.choice_extra), choice.index))
        for position, call in enumerate(choice.tool_calls):
            events.append(
                ToolCallDelta(
                    position, call.arguments, call.id or None, call.name or None, choice.index, call.extra
                )
            )
        events.append(
            Finish(
                choice.finish_reason or "stop",
                choice.index,
                stop_sequence=choice.stop_sequence,
                native=choice.native_finish,
            )
        )
    if completion.usage is not None:
        events.append(completion.usage)
    return events
