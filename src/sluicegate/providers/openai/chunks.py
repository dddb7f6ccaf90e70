"""OpenAI-compatible stream chunks -> canonical events, whatever the upstream's quirks.

Seen in the wild and handled here: `finish_reason` missing or sent together with content,
usage on every chunk (the last one wins), chunks with empty `choices`, `reasoning_content` or
`reasoning` beside the answer, tool-call fragments without an `index` (or repeating their `id`
and `name` on every fragment), `content` as a list of typed parts (Mistral's thinking/text),
finish reasons outside OpenAI's set, a `total_tokens` that also counts reasoning (xAI), error
objects mid-stream.

Nothing the upstream sent is dropped: refusals and logprobs become their own events, the
response metadata (`system_fingerprint`, `service_tier`) a Metadata event when it first
appears or changes, and delta or choice fields the gateway has no name for a Passthrough.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from sluicegate.core.events import (
    FINISH_REASONS,
    Event,
    Finish,
    Metadata,
    Passthrough,
    ReasoningDelta,
    RefusalDelta,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from sluicegate.errors import UpstreamError
from sluicegate.providers.error_text import mid_stream_error
from sluicegate.providers.http import loads_event


def parse_usage(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    prompt = int(raw.get("prompt_tokens") or 0)
    completion = int(raw.get("completion_tokens") or 0)
    details: dict[str, Any] = {
        key: value for key, value in raw.items() if key.endswith("_details") and isinstance(value, dict)
    }
    cached = (details.get("prompt_tokens_details") or {}).get("cached_tokens")
    reasoning = (details.get("completion_tokens_details") or {}).get("reasoning_tokens")
    total = raw.get("total_tokens")
    # Some upstreams (xAI) count reasoning in the total but not in completion_tokens:
    # the client is billed on the upstream's total, so it is passed on as sent.
    valid = isinstance(total, int) and not isinstance(total, bool)
    reported = total if valid and total != prompt + completion else None
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        details=details,
        reported_total=reported,
        cached_tokens=cached if isinstance(cached, int) else 0,
        reasoning_tokens=reasoning if isinstance(reasoning, int) else 0,
    )


_FINISH_ALIASES = {
    "eos": "stop",
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_length": "length",
    "tool_use": "tool_calls",
}


def finish_reason(raw: Any) -> str:
    """OpenAI's enum only: SDKs and typed clients reject anything else."""
    reason = str(raw)
    if reason in FINISH_REASONS:
        return reason
    return _FINISH_ALIASES.get(reason.lower(), "stop")


def _content_parts(content: list[Any], index: int, events: list[Event]) -> None:
    """Mistral's `content: [{"type": "thinking", "thinking": [...]}, {"type": "text", ...}]`."""
    for part in content:
        if not isinstance(part, dict):
            continue
        if part.get("type") == "text" and isinstance(part.get("text"), str) and part["text"]:
            events.append(TextDelta(part["text"], index))
        elif part.get("type") == "thinking":
            thinking = part.get("thinking")
            if isinstance(thinking, list):
                thinking = "".join(
                    p["text"] for p in thinking if isinstance(p, dict) and isinstance(p.get("text"), str)
                )
            if isinstance(thinking, str) and thinking:
                events.append(ReasoningDelta(thinking, index))


_KNOWN_DELTA_KEYS = frozenset(
    {"role", "content", "refusal", "tool_calls", "function_call", "reasoning_content", "reasoning"}
)
_KNOWN_CHOICE_KEYS = frozenset({"index", "delta", "logprobs", "finish_reason"})
_KNOWN_CALL_KEYS = frozenset({"index", "id", "type", "function"})

# The chunk nearly every event of a stream is, in the layout OpenAI, vLLM, llama.cpp and most
# others write it: one piece of text for choice 0, nothing else. `ChunkParser.plain` reads it
# off the text without building the JSON tree; anything else takes `parse`.
_CHOICES = '"choices":['
_PLAIN_OPEN = '{"index":0,"delta":{"content":"'
_PLAIN_CLOSE = '"},"logprobs":null,"finish_reason":null}]'
_PLAIN_START = _CHOICES + _PLAIN_OPEN
_PLAIN_AT = len(_PLAIN_START)
_PLAIN_CLOSE_TO_END = len(_PLAIN_CLOSE) + 1  # the close, then `}` and nothing else
_PLAIN_TAIL = re.compile(r'(?:,"usage":null)?(?:,"obfuscation":"[A-Za-z0-9+/=_-]*")?}\Z')


class ChunkParser:
    """Stateful: remembers which choices started and finished, and the latest usage."""

    __slots__ = (
        "_call_ids",
        "_call_names",
        "_head",
        "_last_call",
        "_meta",
        "finished",
        "name",
        "seen",
        "usage",
    )

    def __init__(self, name: str = "upstream") -> None:
        self.name = name
        self._head: str | None = None  # the text before `"choices":[` of the last chunk parsed whole
        self._meta: tuple[Any, ...] | None = None
        self.seen: set[int] = set()
        self.finished: set[int] = set()
        self.usage: Usage | None = None
        self._call_ids: dict[tuple[int, int], str] = {}  # (choice, call index) -> id sent
        self._call_names: dict[tuple[int, int], str] = {}  # (choice, call index) -> name sent
        self._last_call: dict[int, int] = {}  # choice -> index of its latest call

    def plain(self, data: str) -> list[Event] | None:
        """The events of one chunk's JSON text when it is a plain piece of text whose fields
        before `choices` are those of a chunk already parsed whole (so they bring nothing new:
        no error, the same usage and metadata); None when it must be parsed whole."""
        head = self._head
        if head is None or not data.startswith(head):
            return None
        start = len(head) + _PLAIN_AT
        if not data.startswith(_PLAIN_START, len(head)):
            return None
        end = data.find(_PLAIN_CLOSE, start)
        if end < 0:
            return None
        text = data[start:end]
        if '"' in text:
            return None  # an escaped quote, or more fields than the text: parse it whole
        just_closed = len(data) - end == _PLAIN_CLOSE_TO_END and data[-1] == "}"  # the close, `}`, the end
        if not just_closed and _PLAIN_TAIL.match(data, end + len(_PLAIN_CLOSE)) is None:
            return None
        if "\\" in text:
            try:
                text = orjson.loads('"' + text + '"')
            except orjson.JSONDecodeError:
                return None
        self.seen.add(0)
        return [TextDelta(text, 0)] if text else []

    def parse_text(self, data: str) -> list[Event]:
        """One chunk's JSON text: read plainly when it can be (`plain`), else parsed whole."""
        events = self.plain(data)
        if events is not None:
            return events
        events = self.parse(loads_event(data, self.name))
        at = data.find(_CHOICES)
        self._head = data[:at] if at >= 0 else None
        return events

    def parse(self, chunk: Any) -> list[Event]:
        if not isinstance(chunk, dict):
            raise UpstreamError(f"The upstream of `{self.name}` sent a stream chunk that is not a JSON object.")
        error = chunk.get("error")
        if error:
            raise mid_stream_error(self.name, error)
        raw_usage = chunk.get("usage")
        if raw_usage is not None:
            usage = parse_usage(raw_usage)
            if usage is not None:
                self.usage = usage
        events: list[Event] = []
        fingerprint, tier = chunk.get("system_fingerprint"), chunk.get("service_tier")
        if (fingerprint or tier) and (fingerprint, tier) != self._meta:
            self._meta = (fingerprint, tier)
            events.append(
                Metadata(
                    system_fingerprint=fingerprint if isinstance(fingerprint, str) else None,
                    service_tier=tier if isinstance(tier, str) else None,
                    upstream_id=chunk.get("id") if isinstance(chunk.get("id"), str) else None,
                )
            )
        for choice in chunk.get("choices") or ():
            if isinstance(choice, dict):
                self._choice(choice, events)
        return events

    def _choice(self, choice: dict[str, Any], events: list[Event]) -> None:
        index = int(choice.get("index") or 0)
        self.seen.add(index)
        delta = choice.get("delta") or {}
        if (  # nearly every chunk: one piece of text and nothing else (what the rest would find)
            type(delta) is dict
            and len(delta) == 1
            and type(content := delta.get("content")) is str
            and content
            and choice.get("logprobs") is None
            and not choice.get("finish_reason")
            and choice.keys() <= _KNOWN_CHOICE_KEYS
        ):
            events.append(TextDelta(content, index))
            return
        if not isinstance(delta, dict):
            delta = {}
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if reasoning and isinstance(reasoning, str):
            events.append(ReasoningDelta(reasoning, index))
        logprobs = choice.get("logprobs")
        content_logprobs = refusal_logprobs = None
        if isinstance(logprobs, dict):
            content_logprobs = logprobs.get("content")
            refusal_logprobs = logprobs.get("refusal")
        content = delta.get("content")
        if isinstance(content, str) and (content or content_logprobs):
            events.append(TextDelta(content, index, content_logprobs))
        elif isinstance(content, list):
            _content_parts(content, index, events)
        refusal = delta.get("refusal")
        if isinstance(refusal, str) and (refusal or refusal_logprobs):
            events.append(RefusalDelta(refusal, index, refusal_logprobs))
        unknown = delta.keys() - _KNOWN_DELTA_KEYS
        choice_unknown = choice.keys() - _KNOWN_CHOICE_KEYS
        if unknown or choice_unknown:
            events.append(
                Passthrough({k: delta[k] for k in unknown}, {k: choice[k] for k in choice_unknown}, index)
            )
        for call in delta.get("tool_calls") or ():
            if isinstance(call, dict):
                self._tool_call(call, index, events)
        reason = choice.get("finish_reason")
        if reason and index not in self.finished:
            self.finished.add(index)
            events.append(Finish(finish_reason(reason), index, native=str(reason)))

    def _tool_call(self, call: dict[str, Any], choice: int, events: list[Event]) -> None:
        function = call.get("function") or {}
        call_id = call.get("id") or None
        raw_index = call.get("index")
        if isinstance(raw_index, int) and not isinstance(raw_index, bool):
            position = raw_index
        else:
            # No index: a new id starts the next call, anything else continues the latest one.
            last = self._last_call.get(choice)
            known = call_id is not None and call_id in self._call_ids.values()
            if last is None:
                position = 0
            elif call_id is not None and not known and (choice, last) in self._call_ids:
                position = last + 1
            else:
                position = last
        key = (choice, position)
        self._last_call[choice] = max(position, self._last_call.get(choice, position))
        if call_id is not None:
            if self._call_ids.get(key) == call_id:
                call_id = None  # repeated on every fragment by some servers: send it once
            else:
                self._call_ids[key] = call_id
        name = function.get("name") or None
        if name is not None:
            if self._call_names.get(key) == name:
                name = None  # a repeat, not a further piece of a name streamed in parts
            else:
                self._call_names[key] = self._call_names.get(key, "") + name
        arguments = function.get("arguments")
        if not isinstance(arguments, str):
            arguments = "" if arguments is None else orjson.dumps(arguments).decode()
        unknown = call.keys() - _KNOWN_CALL_KEYS
        extra = {k: call[k] for k in unknown} if unknown else None  # e.g. Google's extra_content
        if call_id is None and name is None and not arguments and extra is None:
            return
        events.append(ToolCallDelta(position, arguments, call_id, name, choice, extra))

    def close(self, saw_done: bool) -> list[Event]:
        """Events owed at the end: missing finishes (after [DONE]) and the usage."""
        unfinished = self.seen - self.finished
        if not saw_done and (unfinished or not self.seen):
            raise UpstreamError(f"The upstream of `{self.name}` closed the stream before it finished.")
        called = {choice for choice, _ in self._call_ids} | {choice for choice, _ in self._call_names}
        events: list[Event] = [
            Finish("tool_calls" if index in called else "stop", index) for index in sorted(unfinished)
        ]
        self.finished.update(unfinished)
        if self.usage is not None:
            events.append(self.usage)
        return events
