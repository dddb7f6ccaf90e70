"""Gemini `GenerateContentResponse` events -> canonical events.

Each streamed event (and a whole answer, which has the same shape) holds `candidates[]` with
`content.parts[]`: `text`, `thought: true` text (reasoning), or a `functionCall`. A call comes
whole (`args`), or, with Gemini 3's streamed arguments, as a `name` with `willContinue` followed
by `partialArgs` pieces addressed by JSON path and closed by a piece without `willContinue`.
Either way the client gets one OpenAI tool call: id (generated, `call_...`) and name at once,
the arguments as one JSON string when the call is complete, one `index` per call in order.

`finishReason` maps to OpenAI's enum (`tool_calls` whenever the answer called a function);
`usageMetadata`, repeated cumulatively on every event, becomes one Usage at the end, with the
thinking tokens counted as completion tokens and shown as reasoning tokens. A prompt Gemini
blocked (`promptFeedback.blockReason`, no candidates) is a 400, not an empty answer.
"""

from __future__ import annotations

import logging
import re
import secrets
from functools import lru_cache
from itertools import pairwise
from typing import Any

import orjson

from sluicegate.core.events import Event, Finish, Metadata, ReasoningDelta, TextDelta, ToolCallDelta, Usage
from sluicegate.errors import UpstreamError
from sluicegate.providers.gemini.errors import PromptBlockedError, error_from

log = logging.getLogger("sluicegate.providers")

_FINISH = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "IMAGE_RECITATION": "content_filter",
}
# the model tried to call a function and failed: an empty "stop" would hide it
_FAILED_CALL = frozenset({"MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL", "TOO_MANY_TOOL_CALLS"})
_PATH_STEP = re.compile(r"\.([^.\[]+)|\[(\d+)\]|\[(['\"])(.*?)\3\]")


def finish_reason(native: str, called: bool) -> str:
    return "tool_calls" if called else _FINISH.get(native, "stop")


def new_call_id() -> str:
    return "call_" + secrets.token_hex(12)


def parse_usage(raw: Any) -> Usage | None:
    """Gemini's counts in OpenAI's terms; None when the event carries no counts yet."""
    if not isinstance(raw, dict) or ("promptTokenCount" not in raw and "candidatesTokenCount" not in raw):
        return None
    prompt = _count(raw, "promptTokenCount") + _count(raw, "toolUsePromptTokenCount")
    thoughts = _count(raw, "thoughtsTokenCount")
    completion = _count(raw, "candidatesTokenCount") + thoughts
    total = raw.get("totalTokenCount")
    reported = total if isinstance(total, int) and total != prompt + completion else None
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        reported_total=reported,
        cached_tokens=_count(raw, "cachedContentTokenCount"),
        reasoning_tokens=thoughts,
    )


def _count(raw: dict[str, Any], key: str) -> int:
    value = raw.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


class _Candidate:
    """One candidate's progress: calls numbered so far, the call being streamed, finished."""

    __slots__ = ("calls", "finished", "open_args", "open_index")

    def __init__(self) -> None:
        self.calls = 0
        self.finished = False
        self.open_index = -1  # the call whose arguments are still arriving, -1 for none
        self.open_args: dict[str, Any] = {}


class StreamParser:
    __slots__ = ("_candidates", "_response_id", "_usage", "name", "wildcard")

    def __init__(self, name: str = "upstream", wildcard: bool = False) -> None:
        self.name = name
        self.wildcard = wildcard
        self._candidates: dict[int, _Candidate] = {}
        self._response_id: str | None = None
        self._usage: Any = None

    def parse(self, chunk: Any) -> list[Event]:
        if not isinstance(chunk, dict):
            raise UpstreamError(f"The upstream of `{self.name}` sent an event that is not a JSON object.")
        if "error" in chunk:
            error = chunk["error"] if isinstance(chunk["error"], dict) else {"message": str(chunk["error"])}
            code = error.get("code")
            log.warning("upstream of %s reported an error mid-stream: %.500s", self.name, error)
            raise error_from(code if isinstance(code, int) else 500, error, {}, self.name, self.wildcard)
        events: list[Event] = []
        response_id = chunk.get("responseId")
        if isinstance(response_id, str) and response_id != self._response_id:
            self._response_id = response_id
            events.append(Metadata(upstream_id=response_id))
        usage = chunk.get("usageMetadata")
        if isinstance(usage, dict) and ("promptTokenCount" in usage or "candidatesTokenCount" in usage):
            self._usage = usage  # cumulative: the last one counts, converted once at the end
        candidates = chunk.get("candidates")
        if not candidates:
            self._check_blocked(chunk.get("promptFeedback"))
            return events
        for position, candidate in enumerate(candidates):
            if isinstance(candidate, dict):
                self._candidate(candidate, position, events)
        return events

    def _check_blocked(self, feedback: Any) -> None:
        reason = feedback.get("blockReason") if isinstance(feedback, dict) else None
        if not reason:
            return
        said = feedback.get("blockReasonMessage")
        raise PromptBlockedError(
            f"Gemini blocked the prompt ({reason}){': ' + said if isinstance(said, str) else ''}."
            " Nothing was generated.",
            feedback,
        )

    def _candidate(self, candidate: dict[str, Any], position: int, events: list[Event]) -> None:
        index = candidate.get("index", position)
        if not isinstance(index, int):
            index = position
        state = self._candidates.get(index)
        if state is None:
            state = self._candidates[index] = _Candidate()
        content = candidate.get("content")
        parts = content.get("parts") if isinstance(content, dict) else None
        if isinstance(parts, list):
            first_text = len(events)
            for part in parts:
                if isinstance(part, dict):
                    self._part(part, index, state, events)
            logprobs = candidate.get("logprobsResult")
            if isinstance(logprobs, dict):
                _attach_logprobs(logprobs, index, events, first_text)
        reason = candidate.get("finishReason")
        if isinstance(reason, str) and not state.finished:
            self._close_call(index, state, events)
            if reason in _FAILED_CALL:
                said = candidate.get("finishMessage")
                raise UpstreamError(
                    f"Gemini failed to call a function ({reason})"
                    f"{': ' + said if isinstance(said, str) else ''}."
                )
            state.finished = True
            events.append(Finish(finish_reason(reason, state.calls > 0), index, native=reason))

    def _part(self, part: dict[str, Any], index: int, state: _Candidate, events: list[Event]) -> None:
        call = part.get("functionCall")
        if isinstance(call, dict):
            self._function_call(call, part.get("thoughtSignature"), index, state, events)
            return
        text = part.get("text")
        signature = part.get("thoughtSignature")
        signature = signature if isinstance(signature, str) and signature else None
        if not isinstance(text, str):
            text = ""
        if text and state.open_index >= 0:
            self._close_call(index, state, events)
        if part.get("thought") is True:
            if text or signature:
                events.append(ReasoningDelta(text, index, signature=signature))
            return
        if text:
            events.append(TextDelta(text, index))
        if signature:
            events.append(ReasoningDelta("", index, signature=signature))

    def _function_call(
        self, call: dict[str, Any], signature: Any, index: int, state: _Candidate, events: list[Event]
    ) -> None:
        name = call.get("name")
        more = call.get("willContinue") is True
        pieces = call.get("partialArgs")
        if isinstance(name, str) and name:
            self._close_call(index, state, events)
            position = state.calls
            state.calls += 1
            extra = None
            if isinstance(signature, str) and signature:
                extra = {"extra_content": {"google": {"thought_signature": signature}}}
            if more or pieces:
                events.append(ToolCallDelta(position, "", new_call_id(), name, index, extra))
                state.open_index, state.open_args = position, {}
            else:
                args = call.get("args")
                arguments = orjson.dumps(args if isinstance(args, dict) else {}).decode()
                events.append(ToolCallDelta(position, arguments, new_call_id(), name, index, extra))
                return
        elif state.open_index < 0:
            if pieces or call.get("args"):
                raise UpstreamError(f"The upstream of `{self.name}` sent function arguments outside a call.")
            return
        if isinstance(pieces, list):
            for piece in pieces:
                if isinstance(piece, dict):
                    _apply(state.open_args, piece)
        if not more:
            self._close_call(index, state, events)

    @staticmethod
    def _close_call(index: int, state: _Candidate, events: list[Event]) -> None:
        """The streamed call's arguments, whole, once its last piece arrived."""
        if state.open_index < 0:
            return
        events.append(ToolCallDelta(state.open_index, orjson.dumps(state.open_args).decode(), choice=index))
        state.open_index, state.open_args = -1, {}

    def close(self) -> list[Event]:
        """Events owed at the end of the answer: the usage. An answer that never said it
        finished was cut off."""
        if not self._candidates or not all(state.finished for state in self._candidates.values()):
            raise UpstreamError(
                f"The upstream of `{self.name}` ended its answer before it finished (no finishReason)."
            )
        usage = parse_usage(self._usage)
        return [usage] if usage is not None else []


def _apply(args: dict[str, Any], piece: dict[str, Any]) -> None:
    """One `partialArgs` piece into the arguments built so far: a value at a JSON path
    (`$.recipe.steps[2]`); a string with `willContinue` continues in the next piece."""
    path = piece.get("jsonPath")
    if not isinstance(path, str) or not path.startswith("$"):
        return
    if "stringValue" in piece:
        value: Any = piece["stringValue"]
    elif "numberValue" in piece:
        value = piece["numberValue"]
    elif "boolValue" in piece:
        value = piece["boolValue"]
    elif "nullValue" in piece:
        value = None
    elif "structValue" in piece or "listValue" in piece:
        value = piece.get("structValue", piece.get("listValue"))
    else:
        return
    steps = _steps(path)
    if not steps:
        return
    container: Any = args
    for step, following in pairwise(steps):
        container = _child(container, step, [] if isinstance(following, int) else {})
        if container is None:
            return
    last = steps[-1]
    if isinstance(container, dict) and isinstance(last, str):
        old = container.get(last)
        container[last] = old + value if isinstance(old, str) and isinstance(value, str) else value
    elif isinstance(container, list) and isinstance(last, int):
        while len(container) <= last:
            container.append(None)
        old = container[last]
        container[last] = old + value if isinstance(old, str) and isinstance(value, str) else value


@lru_cache(maxsize=1024)
def _steps(path: str) -> tuple[str | int, ...]:
    """`$.recipe.steps[2]` -> ("recipe", "steps", 2); a call repeats its paths piece after piece."""
    return tuple(
        int(m.group(2)) if m.group(2) is not None else (m.group(1) if m.group(1) is not None else m.group(4))
        for m in _PATH_STEP.finditer(path, 1)
    )


def _child(container: Any, step: str | int, empty: Any) -> Any:
    if isinstance(container, dict) and isinstance(step, str):
        if not isinstance(container.get(step), dict | list):
            container[step] = empty
        return container[step]
    if isinstance(container, list) and isinstance(step, int):
        while len(container) <= step:
            container.append(None)
        if not isinstance(container[step], dict | list):
            container[step] = empty
        return container[step]
    return None


def _attach_logprobs(result: dict[str, Any], index: int, events: list[Event], start: int) -> None:
    """Gemini's chosen and top candidates as OpenAI `logprobs.content` entries, on the text of
    the same event."""
    chosen = result.get("chosenCandidates")
    if not isinstance(chosen, list) or not chosen:
        return
    tops = result.get("topCandidates")
    tops = tops if isinstance(tops, list) else []
    entries: list[dict[str, Any]] = []
    for position, token in enumerate(chosen):
        if not isinstance(token, dict):
            continue
        top = (
            tops[position].get("candidates")
            if position < len(tops) and isinstance(tops[position], dict)
            else []
        )
        entry = _logprob(token)
        entry["top_logprobs"] = [_logprob(t) for t in top or () if isinstance(t, dict)]
        entries.append(entry)
    for event in reversed(events[start:]):
        if isinstance(event, TextDelta) and event.choice == index:
            event.logprobs = entries
            return
    events.append(TextDelta("", index, entries))


def _logprob(token: dict[str, Any]) -> dict[str, Any]:
    text = token.get("token")
    text = text if isinstance(text, str) else ""
    logprob = token.get("logProbability")
    return {
        "token": text,
        "logprob": logprob if isinstance(logprob, int | float) else 0.0,
        "bytes": list(text.encode("utf-8")),
    }
