"""OpenAI-compatible stream chunks -> canonical events, whatever the upstream's quirks.

Seen in the wild and handled here: `finish_reason` missing or sent together with content,
usage on every chunk (the last one wins), chunks with empty `choices`, `reasoning_content` or
`reasoning` beside the answer, tool-call fragments without an `index`, error objects mid-stream.
"""

from __future__ import annotations

from typing import Any

from sluicegate.core.events import Event, Finish, ReasoningDelta, TextDelta, ToolCallDelta, Usage
from sluicegate.errors import UpstreamError


def parse_usage(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    prompt = int(raw.get("prompt_tokens") or 0)
    completion = int(raw.get("completion_tokens") or 0)
    details = {
        key: value for key, value in raw.items() if key.endswith("_details") and isinstance(value, dict)
    }
    return Usage(prompt_tokens=prompt, completion_tokens=completion, details=details)


class ChunkParser:
    """Stateful: remembers which choices started and finished, and the latest usage."""

    __slots__ = ("finished", "seen", "usage")

    def __init__(self) -> None:
        self.seen: set[int] = set()
        self.finished: set[int] = set()
        self.usage: Usage | None = None

    def parse(self, chunk: Any) -> list[Event]:
        if not isinstance(chunk, dict):
            raise UpstreamError("The upstream sent a stream chunk that is not a JSON object.")
        error = chunk.get("error")
        if error:
            message = error.get("message") if isinstance(error, dict) else str(error)
            raise UpstreamError(f"The upstream reported an error mid-stream: {message}")
        usage = parse_usage(chunk.get("usage"))
        if usage is not None:
            self.usage = usage
        events: list[Event] = []
        for choice in chunk.get("choices") or ():
            self._choice(choice, events)
        return events

    def _choice(self, choice: dict[str, Any], events: list[Event]) -> None:
        index = int(choice.get("index") or 0)
        self.seen.add(index)
        delta = choice.get("delta") or {}
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if reasoning and isinstance(reasoning, str):
            events.append(ReasoningDelta(reasoning, index))
        content = delta.get("content")
        if content:
            events.append(TextDelta(content, index))
        for position, call in enumerate(delta.get("tool_calls") or ()):
            function = call.get("function") or {}
            events.append(
                ToolCallDelta(
                    index=int(call.get("index", position)),
                    arguments=function.get("arguments") or "",
                    id=call.get("id") or None,
                    name=function.get("name") or None,
                    choice=index,
                )
            )
        reason = choice.get("finish_reason")
        if reason and index not in self.finished:
            self.finished.add(index)
            events.append(Finish(str(reason), index))

    def close(self, saw_done: bool) -> list[Event]:
        """Events owed at the end: missing finishes (after [DONE]) and the usage."""
        unfinished = self.seen - self.finished
        if not saw_done and (unfinished or not self.seen):
            raise UpstreamError("The upstream closed the stream before it finished.")
        events: list[Event] = [Finish("stop", index) for index in sorted(unfinished)]
        self.finished.update(unfinished)
        if self.usage is not None:
            events.append(self.usage)
        return events
