"""An OpenAI-compatible stream gives the same canonical events however the network cuts it:
at every byte boundary (a JSON object across reads, a multi-byte UTF-8 character split), with
LF or CRLF framing."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from sluicegate.core.events import Event
from sluicegate.http.sse import SSEDecoder
from sluicegate.providers.openai.chunks import ChunkParser


def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        **extra,
    }


STREAM = [
    chunk({"role": "assistant", "content": ""}, system_fingerprint="fp_x"),
    chunk({"content": "Xin chào, thế giới 👋"}),
    chunk({"refusal": "không"}),
    chunk({"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}}]}),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city": "Hà Nội"'}}]}),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": "}"}}]}),
    chunk({"annotations": [{"type": "x"}]}),
    chunk({}, "tool_calls"),
    {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [],
     "usage": {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}},
]


def wire(newline: bytes) -> bytes:
    return b"".join(b"data: " + orjson.dumps(c) + newline + newline for c in STREAM) + b"data: [DONE]" + newline + newline


def events_of(pieces: list[bytes]) -> list[Event]:
    decoder, parser = SSEDecoder(), ChunkParser()
    events: list[Event] = []
    done = False
    for piece in [*pieces, None]:
        for sse in decoder.feed(piece) if piece is not None else decoder.flush():
            if sse.data == "[DONE]":
                done = True
                continue
            events += parser.parse(orjson.loads(sse.data))
    return events + parser.close(done)


@pytest.mark.parametrize("newline", [b"\n", b"\r\n"], ids=["LF", "CRLF"])
def test_every_split_point_gives_the_same_events(newline: bytes) -> None:
    raw = wire(newline)
    whole = events_of([raw])
    assert len(whole) >= 8
    for cut in range(1, len(raw)):
        assert events_of([raw[:cut], raw[cut:]]) == whole, cut


def test_byte_by_byte_gives_the_same_events() -> None:
    raw = wire(b"\n")
    assert events_of([raw[i : i + 1] for i in range(len(raw))]) == events_of([raw])
