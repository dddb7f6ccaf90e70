"""The plain-text reading of OpenAI chunks (`ChunkParser.plain`) finds exactly what parsing the
whole chunk finds, on real providers' recorded streams and on the cases built to trip it; and it
is taken for the chunks it is for (else it would be a slower path that cannot fail)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from sluicegate.core.events import Event, Metadata, TextDelta
from sluicegate.errors import UpstreamError
from sluicegate.providers.openai.chunks import ChunkParser
from tests.conftest import SHARED_FIXTURES

HEAD = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m"}


def chunk(delta: dict[str, Any], finish_reason: str | None = None, **top: Any) -> str:
    body = {**HEAD, **top, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]}
    return orjson.dumps(body).decode()


def side_by_side(payloads: list[str]) -> tuple[list[list[Event]], int]:
    """Each payload's events through `parse_text`, checked against a parser that parses
    every chunk whole; and how many took the plain reading."""
    fast, whole = ChunkParser("m"), ChunkParser("m")
    seen: list[list[Event]] = []
    plain = 0
    for data in payloads:
        try:
            expected: list[Event] | Exception = whole.parse(json.loads(data))
        except UpstreamError as exc:
            expected = exc
        plain += fast.plain(data) is not None
        try:
            got: list[Event] | Exception = fast.parse_text(data)
        except UpstreamError as exc:
            got = exc
        if isinstance(expected, Exception):
            assert isinstance(got, UpstreamError) and str(got) == str(expected)
            continue
        assert got == expected, data
        seen.append(got)
    assert fast.seen == whole.seen and fast.finished == whole.finished and fast.usage == whole.usage
    assert fast.close(True) == whole.close(True)
    return seen, plain


def payloads_of(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.strip()]


def recorded() -> list[Path]:
    """The OpenAI-compatible chat-chunk recordings (not the legacy completions API's)."""
    folder = SHARED_FIXTURES / "vercel-ai"
    prefixes = ("openai-", "groq-", "deepseek-", "xai-", "mistral-")
    found = sorted(p for p in folder.glob("*.chunks.txt") if p.name.startswith(prefixes)) if folder.is_dir() else []
    return [p for p in found if all(json.loads(d).get("object") == "chat.completion.chunk" for d in payloads_of(p))]


@pytest.mark.parametrize("path", recorded(), ids=lambda p: p.name)
def test_recorded_streams_read_the_same(path: Path) -> None:
    side_by_side(payloads_of(path))


def test_openais_own_recorded_text_stream_is_read_plainly(shared_fixtures: Path) -> None:
    """OpenAI's layout, with `usage: null` and the per-chunk `obfuscation` after `choices`."""
    events, plain = side_by_side(payloads_of(shared_fixtures / "vercel-ai" / "openai-text.chunks.txt"))
    texts = sum(1 for batch in events for event in batch if type(event) is TextDelta)
    assert texts >= 10 and plain >= texts - 1  # every text chunk but the first, parsed whole


def test_a_stream_in_openais_layout_takes_the_plain_reading() -> None:
    payloads = [chunk({"role": "assistant", "content": ""})]
    payloads += [chunk({"content": word}) for word in ("Hello", ", ", "wörld", " 🎉", "")]
    payloads.append(chunk({}, "stop"))
    events, plain = side_by_side(payloads)
    assert plain == 5
    assert [e.text for batch in events for e in batch if type(e) is TextDelta] == ["Hello", ", ", "wörld", " 🎉"]


@pytest.mark.parametrize(
    "text",
    ['say "hi"', "back\\slash", "line\nbreak", "tab\there", "\u2028", "é", "\x00", "}]}", '"},"logprobs":null'],
)
def test_escapes_and_look_alikes_read_the_same(text: str) -> None:
    side_by_side([chunk({"content": "a"}), chunk({"content": text}), chunk({"content": "b"})])


def test_a_changed_head_is_parsed_whole() -> None:
    """A new system_fingerprint mid-stream is news (a Metadata event): not read plainly."""
    payloads = [
        chunk({"content": "a"}, system_fingerprint="fp_1"),
        chunk({"content": "b"}, system_fingerprint="fp_1"),
        chunk({"content": "c"}, system_fingerprint="fp_2"),
    ]
    events, plain = side_by_side(payloads)
    assert plain == 1
    assert [type(e) for e in events[2]] == [Metadata, TextDelta]


@pytest.mark.parametrize(
    "data",
    [
        # more than the text in the choice, another choice, finish, logprobs, unknown fields
        '{"index":0,"delta":{"content":"x","refusal":null},"logprobs":null,"finish_reason":null}]}',
        '{"index":1,"delta":{"content":"x"},"logprobs":null,"finish_reason":null}]}',
        '{"index":0,"delta":{"content":"x"},"logprobs":null,"finish_reason":"stop"}]}',
        '{"index":0,"delta":{"content":"x"},"logprobs":{"content":[]},"finish_reason":null}]}',
        '{"index":0,"delta":{"content":"x"},"logprobs":null,"finish_reason":null}],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}',
        '{"index":0,"delta":{"content":"x"},"logprobs":null,"finish_reason":null}],"error":{"message":"boom"}}',
        '{"index":0,"delta":{"content":"x"},"logprobs":null,"finish_reason":null},{"index":1,"delta":{"content":"y"},"logprobs":null,"finish_reason":null}]}',
        '{"index":0,"delta":{"content":"x"},"logprobs":null,"finish_reason":null}],"annotations":[]}',
    ],
)
def test_what_is_not_plain_is_parsed_whole(data: str) -> None:
    first = chunk({"content": "a"})
    head = first[: first.index('"choices":[') + len('"choices":[')]
    parser = ChunkParser("m")
    parser.parse_text(first)
    assert parser.plain(head + data) is None
    side_by_side([first, head + data])
