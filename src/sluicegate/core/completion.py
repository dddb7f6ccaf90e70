"""A whole (non-streamed) completion, and how to gather one from the event stream."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from sluicegate.core.events import Event, Finish, ReasoningDelta, TextDelta, ToolCallDelta, Usage


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


async def collect(events: AsyncIterator[Event]) -> Completion:
    """Fold a canonical stream into one completion (used where an upstream only streams)."""
    choices: dict[int, Choice] = {}
    texts: dict[int, list[str]] = {}
    reasoning: dict[int, list[str]] = {}
    calls: dict[int, dict[int, list[Any]]] = {}
    usage: Usage | None = None

    def choice(i: int) -> Choice:
        if i not in choices:
            choices[i] = Choice(index=i)
        return choices[i]

    async for event in events:
        if isinstance(event, TextDelta):
            choice(event.choice)
            texts.setdefault(event.choice, []).append(event.text)
        elif isinstance(event, ReasoningDelta):
            choice(event.choice)
            reasoning.setdefault(event.choice, []).append(event.text)
        elif isinstance(event, ToolCallDelta):
            choice(event.choice)
            slot = calls.setdefault(event.choice, {}).setdefault(event.index, ["", "", []])
            slot[0] = event.id or slot[0]
            slot[1] = event.name or slot[1]
            slot[2].append(event.arguments)
        elif isinstance(event, Finish):
            choice(event.choice).finish_reason = event.reason
        elif isinstance(event, Usage):
            usage = event

    for i, c in choices.items():
        if i in texts:
            c.content = "".join(texts[i])
        if i in reasoning:
            c.reasoning = "".join(reasoning[i])
        for _, (call_id, name, parts) in sorted(calls.get(i, {}).items()):
            c.tool_calls.append(ToolCall(id=call_id, name=name, arguments="".join(parts)))
        if c.finish_reason is None:
            c.finish_reason = "stop"
    return Completion(choices=[choices[i] for i in sorted(choices)], usage=usage)


async def completion_events(completion: Completion) -> AsyncGenerator[Event, None]:
    """The canonical stream of a whole completion, for upstreams that answered at once."""
    for choice in completion.choices:
        if choice.reasoning:
            yield ReasoningDelta(choice.reasoning, choice.index)
        if choice.content:
            yield TextDelta(choice.content, choice.index)
        for position, call in enumerate(choice.tool_calls):
            yield ToolCallDelta(position, call.arguments, call.id or None, call.name or None, choice.index)
        yield Finish(choice.finish_reason or "stop", choice.index)
    if completion.usage is not None:
        yield completion.usage
