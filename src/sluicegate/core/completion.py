"""A whole (non-streamed) completion, and how to gather one from the event stream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from sluicegate.core.events import Batch, Event, Finish, ReasoningDelta, TextDelta, ToolCallDelta, Usage


@dataclass(slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str


@dataclass(slots=True)
class Choice:
    index: int
    content: str | None = None
    reasoning: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Completion:
    choices: list[Choice]
    usage: Usage | None = None
    system_fingerprint: str | None = None


class _Fold:
    """Accumulates events per choice into whole messages."""

    def __init__(self) -> None:
        self.choices: dict[int, Choice] = {}
        self.texts: dict[int, list[str]] = {}
        self.reasoning: dict[int, list[str]] = {}
        self.calls: dict[int, dict[int, list[Any]]] = {}
        self.usage: Usage | None = None

    def _choice(self, i: int) -> Choice:
        if i not in self.choices:
            self.choices[i] = Choice(index=i)
        return self.choices[i]

    def add(self, event: Event) -> None:
        if isinstance(event, TextDelta):
            self._choice(event.choice)
            self.texts.setdefault(event.choice, []).append(event.text)
        elif isinstance(event, ReasoningDelta):
            self._choice(event.choice)
            self.reasoning.setdefault(event.choice, []).append(event.text)
        elif isinstance(event, ToolCallDelta):
            self._choice(event.choice)
            slot = self.calls.setdefault(event.choice, {}).setdefault(event.index, ["", "", []])
            slot[0] = event.id or slot[0]
            slot[1] = event.name or slot[1]
            slot[2].append(event.arguments)
        elif isinstance(event, Finish):
            self._choice(event.choice).finish_reason = event.reason
        elif isinstance(event, Usage):
            self.usage = event

    def completion(self) -> Completion:
        for i, c in self.choices.items():
            if i in self.texts:
                c.content = "".join(self.texts[i])
            if i in self.reasoning:
                c.reasoning = "".join(self.reasoning[i])
            for _, (call_id, name, parts) in sorted(self.calls.get(i, {}).items()):
                c.tool_calls.append(ToolCall(id=call_id, name=name, arguments="".join(parts)))
            if c.finish_reason is None:
                c.finish_reason = "stop"
        return Completion(choices=[self.choices[i] for i in sorted(self.choices)], usage=self.usage)


async def collect(batches: AsyncIterator[Batch]) -> Completion:
    """Fold a canonical stream into one completion (used where an upstream only streams)."""
    fold = _Fold()
    async for batch in batches:
        for event in batch:
            fold.add(event)
    return fold.completion()


def completion_events(completion: Completion) -> Batch:
    """The canonical events of a whole completion, for upstreams that answered at once."""
    events: Batch = []
    for choice in completion.choices:
        if choice.reasoning:
            events.append(ReasoningDelta(choice.reasoning, choice.index))
        if choice.content:
            events.append(TextDelta(choice.content, choice.index))
        for position, call in enumerate(choice.tool_calls):
            events.append(
                ToolCallDelta(position, call.arguments, call.id or None, call.name or None, choice.index)
            )
        events.append(Finish(choice.finish_reason or "stop", choice.index))
    if completion.usage is not None:
        events.append(completion.usage)
    return events
