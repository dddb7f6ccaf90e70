"""The byte relay of an Anthropic Messages stream (providers/anthropic/relay.py), fed read by
read and written by the Messages door's encoder: on every recorded Anthropic stream and at any
boundaries of the reads, the client's bytes are the translated path's (SSE decoder,
MessageStreamParser, encoder), and the text events' text is passed on undecoded."""

from __future__ import annotations

from pathlib import Path

import pytest

from sluicegate.api.messages.stream import MessageStreamEncoder
from sluicegate.core.events import Batch, RawText, Started
from sluicegate.errors import GatewayError
from sluicegate.http.sse import SSEDecoder
from sluicegate.providers.anthropic.relay import MessagesRelay
from sluicegate.providers.anthropic.stream import MessageStreamParser
from sluicegate.providers.http import loads_event
from tests.conftest import SHARED_FIXTURES
from tests.providers.anthropic.test_anthropic_recordings import answers
from tests.support.anthropic_upstream import recording


def translated(raw: bytes) -> bytes:
    decoder, parser = SSEDecoder(), MessageStreamParser("entry", explain_refusals=False)
    encoder = MessageStreamEncoder("msg_gw", "client-model")
    batch: Batch = []
    try:
        for sse in decoder.feed(raw) + decoder.flush():
            parser.parse(loads_event(sse.data, "entry"), batch)
        batch += parser.close()
    except GatewayError as exc:
        return encoder.open(Started()) + encoder.encode_batch(batch) + encoder.fail(exc)
    return encoder.open(Started()) + encoder.encode_batch(batch) + encoder.close()


def relayed(reads: list[bytes]) -> tuple[bytes, Batch]:
    relay = MessagesRelay("entry", explain_refusals=False)
    encoder = MessageStreamEncoder("msg_gw", "client-model")
    batch: Batch = []
    try:
        for data in reads:
            more, error = relay.feed(data)
            batch += more
            if error is not None:
                raise error
        batch += relay.close()
    except GatewayError as exc:
        return encoder.open(Started()) + encoder.encode_batch(batch) + encoder.fail(exc), batch
    return encoder.open(Started()) + encoder.encode_batch(batch) + encoder.close(), batch


def load(answer: str) -> bytes:
    name, _, n = answer.partition("#")
    return b"".join(recording(SHARED_FIXTURES / name)[int(n)])


@pytest.mark.parametrize("answer", answers())
@pytest.mark.parametrize("size", [1, 7, 64, 1_000_000])
def test_recorded_streams_read_the_same_as_translated(answer: str, size: int, shared_fixtures: Path) -> None:
    raw = load(answer)
    out, _ = relayed([raw[i : i + size] for i in range(0, len(raw), size)])
    assert out == translated(raw)


def test_text_events_are_passed_on_undecoded(shared_fixtures: Path) -> None:
    raw = (shared_fixtures / "anthropic-sdk-python" / "basic_response.txt").read_bytes()
    out, batch = relayed([raw])
    (text,) = [event for event in batch if type(event) is RawText]
    assert text.pieces == [b"Hello", b" there", b"!"]
    assert out == translated(raw)


def test_an_escaped_text_keeps_its_escapes_and_a_quote_is_read_whole() -> None:
    def delta(text: bytes) -> bytes:
        return (
            b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
            b'"delta":{"type":"text_delta","text":"' + text + b'"}}\n\n'
        )

    start = (
        b'event: message_start\ndata: {"type":"message_start","message":{"id":"m","type":"message",'
        b'"role":"assistant","content":[],"model":"c","usage":{"input_tokens":3,"output_tokens":1}}}\n\n'
        b'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
        b'"content_block":{"type":"text","text":""}}\n\n'
    )
    end = (
        b'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n'
        b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"},'
        b'"usage":{"output_tokens":4}}\n\nevent: message_stop\ndata: {"type":"message_stop"}\n\n'
    )
    raw = start + delta(b"caf\\u00e9") + delta(b'say \\"hi\\"') + delta(b" \\n") + end
    out, _ = relayed([raw])
    assert b'"text":"caf\\u00e9"' in out  # as the upstream escaped it
    assert out == translated(raw).replace("café".encode(), b"caf\\u00e9")
    relay = MessagesRelay("entry", explain_refusals=False)
    relay.feed(raw)
    assert relay.transcript() == ['caf\u00e9say "hi" \n']
