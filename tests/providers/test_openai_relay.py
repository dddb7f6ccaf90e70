"""The byte relay of an OpenAI chat stream (providers/openai/relay.py), fed read by read and
written by the OpenAI door's encoder: the client's bytes are those of the translated path
(SSE decoder, ChunkParser, encoder) whatever the reads' boundaries and the upstream's layout,
and the text chunks are passed on without being decoded."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from sluicegate.api.chat_completions.chunks import ChunkEncoder
from sluicegate.core.events import Batch, Event, Finish, RawText, Started, Usage
from sluicegate.errors import GatewayError, UpstreamError
from sluicegate.http.sse import SSEDecoder
from sluicegate.providers.openai.chunks import ChunkParser
from sluicegate.providers.openai.relay import ChatRelay

HEAD = {"id": "chatcmpl-up", "object": "chat.completion.chunk", "created": 1700000000, "model": "gpt-4o-mini-2024-07-18"}


def event(choices: list[dict[str, Any]], **extra: Any) -> bytes:
    return b"data: " + orjson.dumps({**HEAD, "system_fingerprint": "fp_1", "choices": choices, **extra}) + b"\n\n"


def delta(index: int = 0, finish: str | None = None, **fields: Any) -> dict[str, Any]:
    return {"index": index, "delta": fields, "logprobs": None, "finish_reason": finish}


USAGE = {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}
DONE = b"data: [DONE]\n\n"


def openai_like(words: list[str], usage_null: bool = True, obfuscation: bool = True) -> list[bytes]:
    """A stream in hosted OpenAI's layout: `usage: null` and padding after `choices`."""
    extra: dict[str, Any] = {"usage": None} if usage_null else {}
    events = [event([delta(role="assistant", content="", refusal=None)], **extra)]
    for i, word in enumerate(words):
        events.append(event([delta(content=word)], **extra, **({"obfuscation": "a" * i} if obfuscation else {})))
    events.append(event([delta(finish="stop")], **extra))
    if usage_null:
        events.append(event([], usage=USAGE))
    return [*events, DONE]


WORDS = ["Hello", ", ", "w\u00f6rld", " \\\\ back", "\\n", " tab\\t", " \U0001f600", " end."]


def translated(raw: bytes, include_usage: bool) -> bytes:
    decoder, parser = SSEDecoder(), ChunkParser("entry")
    encoder = ChunkEncoder("chatcmpl-gw", 1, "client-model", include_usage)
    batch: Batch = []
    done = False
    for sse in decoder.feed(raw) + decoder.flush():
        if sse.data == "[DONE]":
            done = True
            break
        batch += parser.parse_text(sse.data)
    batch += parser.close(done)
    return encoder.open(Started()) + encoder.encode_batch(batch) + encoder.close()


def relayed(reads: list[bytes], include_usage: bool) -> tuple[bytes, list[Event], ChatRelay]:
    relay = ChatRelay("entry")
    encoder = ChunkEncoder("chatcmpl-gw", 1, "client-model", include_usage)
    batch: Batch = []
    for data in reads:
        more, error = relay.feed(data)
        batch += more
        if error is not None:
            raise error
        if relay.done:
            break
    batch += relay.close()
    return encoder.open(Started()) + encoder.encode_batch(batch) + encoder.close(), batch, relay


@pytest.mark.parametrize("size", [1, 3, 17, 100, 100_000])
@pytest.mark.parametrize("include_usage", [True, False])
@pytest.mark.parametrize("layout", ["openai", "vllm", "crlf"])
def test_the_client_gets_the_translated_paths_bytes(size: int, include_usage: bool, layout: str) -> None:
    stream = b"".join(openai_like(WORDS, usage_null=layout != "vllm", obfuscation=layout == "openai"))
    if layout == "crlf":
        stream = stream.replace(b"\n", b"\r\n")
    out, batch, _ = relayed([stream[i : i + size] for i in range(0, len(stream), size)], include_usage)
    assert out == translated(stream, include_usage)
    if size >= 100:  # whole chunks in a read: the text chunks were not decoded
        assert any(type(e) is RawText for e in batch)
    assert [type(e) for e in batch if type(e) in (Finish, Usage)] == ([Finish, Usage] if layout != "vllm" else [Finish])


def test_text_chunks_are_passed_on_undecoded() -> None:
    stream = b"".join(openai_like(["a", "b", "c"], obfuscation=False))
    _, batch, relay = relayed([stream], True)
    (raw,) = [e for e in batch if type(e) is RawText]
    assert raw.pieces == [b"a", b"b", b"c"]
    assert relay.transcript() == ["abc"]  # decoded once, at the end


@pytest.mark.parametrize(
    "chunks",
    [
        [event([delta(content='say "hi"')])],  # an escaped quote: read whole
        [event([delta(content="x", refusal=None)])],  # more fields in the delta
        [b": OPENROUTER PROCESSING\n\n", event([delta(content="x")])],  # a comment
        [b"data:" + event([delta(content="x")])[6:]],  # no space after `data:`
        [event([delta(content="a")]).replace(b'":', b'": ')],  # spaced JSON
        [event([delta(content="a", reasoning_content="r")])],
        [event([delta(content="x")], service_tier="flex")],  # a field changes: the head differs
        [event([delta(finish="eos", content="last")])],  # finish with content, outside the enum
    ],
)
def test_chunks_in_another_layout_are_read_whole_as_the_translated_path_reads_them(chunks: list[bytes]) -> None:
    stream = b"".join([event([delta(role="assistant", content="")]), event([delta(content="one")]), *chunks, DONE])
    out, _, _ = relayed([stream], False)
    assert out == translated(stream, False)


def test_a_missing_finish_and_no_done() -> None:
    no_finish = event([delta(role="assistant", content="")]) + event([delta(content="x")]) + DONE
    assert relayed([no_finish], False)[0] == translated(no_finish, False)
    cut = event([delta(role="assistant", content="")]) + event([delta(content="x")])
    with pytest.raises(UpstreamError, match="closed the stream before it finished"):
        relayed([cut], False)
    with pytest.raises(UpstreamError):
        translated(cut, False)


def test_a_last_event_without_its_blank_line() -> None:
    stream = event([delta(role="assistant", content="")]) + event([delta(content="x")]) + event([delta(finish="stop")])
    assert relayed([stream[:-2]], False)[0] == translated(stream[:-2], False)


def test_an_error_event_ends_the_stream_after_what_came_before_it() -> None:
    relay = ChatRelay("entry")
    head = event([delta(role="assistant", content="")]) + event([delta(content="Hello")])
    batch, error = relay.feed(head + b'data: {"error":{"message":"overloaded","type":"server_error"}}\n\n')
    assert RawText in {type(e) for e in batch}
    assert isinstance(error, GatewayError) and "error mid-stream" in error.message


def test_the_transcript_is_the_answer_in_the_order_it_went_out() -> None:
    relay = ChatRelay("entry")
    relay.feed(event([delta(role="assistant", content="")]) + event([delta(content="caf\u00e9 ")]))
    relay.feed(event([delta(content='"ok"')]) + event([delta(content=" more")]))  # a quote: read whole
    call = {"index": 0, "id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    relay.feed(event([delta(tool_calls=[call])]))
    assert relay.texted
    assert relay.transcript() == ['caf\u00e9 "ok" moref{}']
