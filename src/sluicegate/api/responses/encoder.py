"""Canonical events -> OpenAI's Responses stream, and the response object it builds.

Each kind of content becomes an output item, opened and closed as OpenAI does: a message
(`output_item.added`, `content_part.added`, `output_text.delta`... `output_text.done`,
`content_part.done`, `output_item.done`), with a refusal as its own content part; a reasoning
item with one summary part; one `function_call` item per tool call. Every event carries the
next `sequence_number`. The stream ends with `response.completed`, `response.incomplete`
(at the token limit) or `response.failed`, each carrying the whole response object.

A delta is the hot path: its constant bytes are made once per content part, so each costs
one orjson call for its text. The same state machine, run quietly, folds a whole answer into
the response object, so streamed and whole answers cannot drift apart.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from sluicegate.api.responses.items import new_id
from sluicegate.api.responses.resource import error_object, usage_object
from sluicegate.core.events import (
    Batch,
    BlockEnd,
    Event,
    Finish,
    Metadata,
    ReasoningDelta,
    RefusalDelta,
    Seam,
    Started,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from sluicegate.errors import GatewayError

_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}
_END = b"}\n\n"
_NO_LOGPROBS_END = b',"logprobs":[]}\n\n'


class _Open:
    """The output item being written, and the content part or summary streaming into it."""

    __slots__ = ("call_index", "head", "index", "item", "logprobs", "mid", "part", "pieces", "signature")

    def __init__(self, item: dict[str, Any], index: int, call_index: int = -1) -> None:
        self.item = item
        self.index = index
        self.call_index = call_index
        self.part: str | None = None  # output_text | refusal | summary_text | arguments
        self.head = b""  # the delta event's bytes up to its sequence number
        self.mid = b""  # from after the sequence number up to the delta's text
        self.pieces: list[str] = []
        self.logprobs: list[dict[str, Any]] = []
        self.signature: str | None = None


class ResponseEncoder:
    __slots__ = ("_calls", "_finish", "_namespaced", "_open", "_quiet", "_seq", "_usage", "output", "resource")

    def __init__(
        self,
        resource: dict[str, Any],
        quiet: bool = False,
        namespaced: dict[str, tuple[str, str]] | None = None,
    ) -> None:
        self.resource = resource  # the response object; complete once `close` or `fail` ran
        self._namespaced = namespaced or {}  # offered name of a namespaced tool -> (namespace, name)
        self.output: list[dict[str, Any]] = []
        self._seq = 0
        self._quiet = quiet  # fold only: no bytes (a whole answer)
        self._open: _Open | None = None
        self._calls: dict[int, dict[str, Any]] = {}  # finished function_call items by tool-call index
        self._finish: str | None = None
        self._usage: Usage | None = None

    # --- framing -------------------------------------------------------------------------

    def _event(self, kind: str, fields: dict[str, Any]) -> bytes:
        seq = self._seq
        self._seq += 1
        if self._quiet:
            return b""
        name = kind.encode()
        return (
            b"event: "
            + name
            + b'\ndata: {"type":"'
            + name
            + b'","sequence_number":'
            + str(seq).encode()
            + b","
            + orjson.dumps(fields)[1:]
            + b"\n\n"
        )

    def _delta(self, open_: _Open, text: str, end: bytes = _END) -> bytes:
        open_.pieces.append(text)
        seq = self._seq
        self._seq += 1
        if self._quiet:
            return b""
        return open_.head + str(seq).encode() + open_.mid + orjson.dumps(text) + end

    def _stream(self, open_: _Open, kind: str, where: dict[str, Any]) -> None:
        """Make the constant bytes of this part's delta events."""
        name = kind.encode()
        open_.head = b"event: " + name + b'\ndata: {"type":"' + name + b'","sequence_number":'
        open_.mid = b"," + orjson.dumps(where)[1:-1] + b',"delta":'
        open_.pieces = []

    def _where(self, open_: _Open, **extra: Any) -> dict[str, Any]:
        return {"item_id": open_.item["id"], "output_index": open_.index, **extra}

    # --- the protocol ----------------------------------------------------------------------

    def open(self, started: Started) -> bytes:
        return self._event("response.created", {"response": self.resource}) + self._event(
            "response.in_progress", {"response": self.resource}
        )

    def open_queued(self) -> bytes:
        """A background response's first events: created and queued, before any work."""
        self.resource["status"] = "queued"
        return self._event("response.created", {"response": self.resource}) + self._event(
            "response.queued", {"response": self.resource}
        )

    def start(self) -> bytes:
        """A background response taken up: `response.in_progress`."""
        self.resource["status"] = "in_progress"
        return self._event("response.in_progress", {"response": self.resource})

    def cancel(self) -> None:
        """A cancelled background response: its items end where they stopped. OpenAI's stream
        has no event for it; the stream just ends."""
        if self._open is not None:
            self._finish_item(self._open, "incomplete")
            self._open = None
        self.resource["status"] = "cancelled"
        self._settle()

    @property
    def sequence(self) -> int:
        """The next event's sequence number."""
        return self._seq

    def encode_batch(self, batch: Batch) -> bytes:
        if len(batch) == 1:
            return self.encode(batch[0])
        return b"".join([self.encode(event) for event in batch])

    def encode(self, event: Event) -> bytes:
        kind = type(event)
        if getattr(event, "choice", 0) != 0:
            return b""  # a response has one output; extra choices (n > 1) have no place in it
        if kind is TextDelta:
            return self._text(event)  # type: ignore[arg-type]
        if kind is ToolCallDelta:
            return self._tool_call(event)  # type: ignore[arg-type]
        if kind is ReasoningDelta:
            return self._reasoning(event)  # type: ignore[arg-type]
        if kind is RefusalDelta:
            if not event.text:  # type: ignore[union-attr]
                return b""
            out = self._enter_part("refusal")
            assert self._open is not None
            return out + self._delta(self._open, event.text)  # type: ignore[union-attr]
        if kind is Finish:
            self._finish = event.reason  # type: ignore[union-attr]
            return self._close_open("incomplete" if self._finish in _INCOMPLETE else "completed")
        if kind is Usage:
            self._usage = event  # type: ignore[assignment]
        elif kind is BlockEnd:
            return self._close_open("completed")
        elif kind is Metadata and event.service_tier is not None:  # type: ignore[union-attr]
            self.resource["service_tier"] = event.service_tier  # type: ignore[union-attr]
        elif kind is Seam:  # mid-stream fail-over: an extension field of the response
            seams = self.resource.setdefault("sluicegate", {"seams": []})["seams"]
            seams.append(event.to_json())  # type: ignore[union-attr]
        return b""  # Started, Passthrough (chat-only fields)

    def close(self) -> bytes:
        status = "incomplete" if self._finish in _INCOMPLETE else "completed"
        out = self._close_open(status)
        resource = self.resource
        resource["status"] = status
        if status == "incomplete":
            resource["incomplete_details"] = {"reason": _INCOMPLETE[self._finish or ""]}
        else:
            resource["completed_at"] = int(time.time())
        self._settle()
        return out + self._event(f"response.{status}", {"response": resource})

    def fail(self, error: GatewayError) -> bytes:
        """`response.failed` and nothing after it: the item being written ends where it stopped."""
        if self._open is not None:
            self._finish_item(self._open, "incomplete")
            self._open = None
        self.resource["status"] = "failed"
        self.resource["error"] = error_object(error)
        self._settle()
        return self._event("response.failed", {"response": self.resource})

    def _settle(self) -> None:
        self.resource["output"] = self.output
        if self._usage is not None:
            self.resource["usage"] = usage_object(self._usage)

    # --- items -----------------------------------------------------------------------------

    def _add_item(self, item: dict[str, Any], call_index: int = -1) -> bytes:
        self._open = _Open(item, len(self.output), call_index)
        self.output.append(item)
        return self._event("response.output_item.added", {"output_index": self._open.index, "item": item})

    def _close_open(self, status: str) -> bytes:
        open_ = self._open
        if open_ is None:
            return b""
        self._open = None
        out = self._close_part(open_)
        self._finish_item(open_, status)
        return out + self._event(
            "response.output_item.done", {"output_index": open_.index, "item": open_.item}
        )

    def _finish_item(self, open_: _Open, status: str) -> None:
        item = open_.item
        if item["type"] == "reasoning":
            if open_.part is not None:
                item["summary"] = [{"type": "summary_text", "text": "".join(open_.pieces)}]
            if open_.signature is not None:
                item["encrypted_content"] = open_.signature
            return  # reasoning items carry no status, as OpenAI's
        if item["type"] == "function_call":
            item["arguments"] = "".join(open_.pieces)
            self._split_name(item)
            self._calls[open_.call_index] = item
        elif open_.part is not None:  # a message: the part cut short by a failure
            item["content"].append(self._part(open_))
        item["status"] = status

    def _split_name(self, item: dict[str, Any]) -> None:
        """A call of a namespaced tool, named as the client knows it: `name` and `namespace`."""
        split = self._namespaced.get(item["name"])
        if split is not None:
            item["namespace"], item["name"] = split

    def _part(self, open_: _Open) -> dict[str, Any]:
        text = "".join(open_.pieces)
        if open_.part == "refusal":
            return {"type": "refusal", "refusal": text}
        return {"type": "output_text", "annotations": [], "logprobs": open_.logprobs, "text": text}

    def _close_part(self, open_: _Open) -> bytes:
        """The done events of the part streaming into the item, in OpenAI's order."""
        part = open_.part
        if part is None:
            return b""
        text = "".join(open_.pieces)
        if part == "summary_text":
            where = self._where(open_, summary_index=0)
            return self._event("response.reasoning_summary_text.done", {**where, "text": text}) + self._event(
                "response.reasoning_summary_part.done",
                {**where, "part": {"type": "summary_text", "text": text}},
            )
        if part == "arguments":
            done = {**self._where(open_), "name": open_.item["name"], "arguments": text}
            return self._event("response.function_call_arguments.done", done)
        where = self._where(open_, content_index=len(open_.item["content"]))
        if part == "refusal":
            out = self._event("response.refusal.done", {**where, "refusal": text})
        else:
            out = self._event(
                "response.output_text.done", {**where, "text": text, "logprobs": open_.logprobs}
            )
        content = self._part(open_)
        open_.item["content"].append(content)
        open_.part = None
        return out + self._event("response.content_part.done", {**where, "part": content})

    def _enter_part(self, part: str) -> bytes:
        """Make sure a message is open with a part of this kind streaming into it."""
        out = b""
        open_ = self._open
        if open_ is None or open_.item["type"] != "message":
            out += self._close_open("completed")
            item = {
                "id": new_id("msg_"),
                "type": "message",
                "status": "in_progress",
                "content": [],
                "role": "assistant",
            }
            out += self._add_item(item)
            open_ = self._open
            assert open_ is not None
        if open_.part == part:
            return out
        out += self._close_part(open_)
        where = self._where(open_, content_index=len(open_.item["content"]))
        empty: dict[str, Any] = (
            {"type": "refusal", "refusal": ""}
            if part == "refusal"
            else {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
        )
        open_.part = part
        open_.logprobs = []
        self._stream(
            open_, "response.refusal.delta" if part == "refusal" else "response.output_text.delta", where
        )
        return out + self._event("response.content_part.added", {**where, "part": empty})

    def _text(self, event: TextDelta) -> bytes:
        if not event.text and not event.logprobs:
            return b""
        out = self._enter_part("output_text")
        open_ = self._open
        assert open_ is not None
        if event.logprobs is None:
            return out + self._delta(open_, event.text, _NO_LOGPROBS_END)
        open_.logprobs.extend(event.logprobs)
        return out + self._delta(open_, event.text, b',"logprobs":' + orjson.dumps(event.logprobs) + _END)

    def _reasoning(self, event: ReasoningDelta) -> bytes:
        open_ = self._open
        if not event.text:
            if open_ is not None and open_.item["type"] == "reasoning" and event.signature:
                open_.signature = event.signature  # Anthropic's thinking signature, opaque like OpenAI's
            return b""
        out = b""
        if open_ is None or open_.item["type"] != "reasoning":
            out += self._close_open("completed")
            out += self._add_item({"id": new_id("rs_"), "type": "reasoning", "summary": []})
            open_ = self._open
            assert open_ is not None
            where = self._where(open_, summary_index=0)
            open_.part = "summary_text"
            self._stream(open_, "response.reasoning_summary_text.delta", where)
            out += self._event(
                "response.reasoning_summary_part.added",
                {**where, "part": {"type": "summary_text", "text": ""}},
            )
        if event.signature:
            open_.signature = event.signature
        return out + self._delta(open_, event.text)

    def _tool_call(self, event: ToolCallDelta) -> bytes:
        open_ = self._open
        out = b""
        if open_ is None or open_.call_index != event.index:
            done = self._calls.get(event.index)
            if done is not None:  # a fragment for a call already closed: keep it in the answer
                done["arguments"] += event.arguments
                return b""
            out += self._close_open("completed")
            item = {
                "id": new_id("fc_"),
                "type": "function_call",
                "status": "in_progress",
                "arguments": "",
                "call_id": event.id or new_id("call_"),
                "name": event.name or "",
            }
            self._split_name(item)
            out += self._add_item(item, event.index)
            open_ = self._open
            assert open_ is not None
            open_.part = "arguments"
            self._stream(open_, "response.function_call_arguments.delta", self._where(open_))
        elif event.name:  # a name streamed in pieces (the parser drops repeats)
            open_.item["name"] += event.name
        if not event.arguments:
            return out
        return out + self._delta(open_, event.arguments)
