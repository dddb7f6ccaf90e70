"""An OpenAI-compatible upstream's legacy `/completions` answer -> canonical events.

Each choice's `text` is a TextDelta (of choice `index`); its legacy `logprobs` object rides
along as a Passthrough, sent on as the upstream wrote it; `finish_reason` a Finish; `usage`
the Usage (the gateway asks for it in streams, as it does for chat)."""

from __future__ import annotations

from typing import Any

from sluicegate.core.completion import Choice, Completion
from sluicegate.core.events import Event, Finish, Metadata, Passthrough, TextDelta
from sluicegate.errors import UpstreamError
from sluicegate.providers.http import loads_event
from sluicegate.providers.openai.chunks import finish_reason, parse_usage


def _choices(body: dict[str, Any], name: str) -> list[dict[str, Any]]:
    if isinstance(body.get("error"), dict):
        message = body["error"].get("message") or "an error"
        raise UpstreamError(f"The upstream of `{name}` failed mid-answer: {message}")
    choices = body.get("choices")
    return [c for c in choices if isinstance(c, dict)] if isinstance(choices, list) else []


def _index(choice: dict[str, Any], default: int) -> int:
    index = choice.get("index")
    return index if isinstance(index, int) else default


class LegacyChunkParser:
    """The same interface as the chat ChunkParser, for `text_completion` chunks."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.fingerprint: str | None = None

    def parse_text(self, data: str) -> list[Event]:
        chunk = loads_event(data, self.name)
        if not isinstance(chunk, dict):
            return []
        events: list[Event] = []
        fingerprint = chunk.get("system_fingerprint")
        if isinstance(fingerprint, str) and fingerprint != self.fingerprint:
            self.fingerprint = fingerprint
            events.append(Metadata(system_fingerprint=fingerprint))
        for raw in _choices(chunk, self.name):
            index = _index(raw, 0)
            text = raw.get("text")
            if isinstance(text, str) and text:
                events.append(TextDelta(text, index))
            if raw.get("logprobs") is not None:
                events.append(Passthrough({}, {"logprobs": raw["logprobs"]}, index))
            if raw.get("finish_reason"):
                events.append(Finish(finish_reason(raw["finish_reason"]), index, native=str(raw["finish_reason"])))
        usage = parse_usage(chunk.get("usage"))
        if usage is not None:
            events.append(usage)
        return events

    def close(self, saw_done: bool) -> list[Event]:
        return []


def parse_text_completion(body: Any, name: str) -> Completion:
    if not isinstance(body, dict):
        raise UpstreamError(f"The upstream of `{name}` answered /completions with something other than JSON.")
    choices = []
    for position, raw in enumerate(_choices(body, name)):
        index = _index(raw, position)
        choice = Choice(index=index, content=str(raw.get("text") or ""))
        choice.finish_reason = finish_reason(raw.get("finish_reason") or "stop")
        if raw.get("logprobs") is not None:
            choice.choice_extra["logprobs"] = raw["logprobs"]
        choices.append(choice)
    fingerprint = body.get("system_fingerprint")
    return Completion(
        choices=choices,
        usage=parse_usage(body.get("usage")),
        metadata=Metadata(system_fingerprint=fingerprint) if isinstance(fingerprint, str) else None,
    )
