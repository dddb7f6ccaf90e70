"""The incremental SSE decoder: WHATWG line rules, however the bytes are cut into reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from sluicegate.http.sse import SSEDecoder, SSEEvent, encode_data


def decode(*reads: bytes, flush: bool = True) -> list[SSEEvent]:
    decoder = SSEDecoder()
    events: list[SSEEvent] = []
    for read in reads:
        events += decoder.feed(read)
    if flush:
        events += decoder.flush()
    return events


def datas(events: list[SSEEvent]) -> list[str]:
    return [event.data for event in events]


def every_split(stream: bytes) -> list[list[SSEEvent]]:
    """Decode `stream` cut into two reads at every position (and three reads at every pair nearby)."""
    results = []
    for cut in range(len(stream) + 1):
        results.append(decode(stream[:cut], stream[cut:]))
        for second in range(cut, min(cut + 4, len(stream) + 1)):
            results.append(decode(stream[:cut], stream[cut:second], stream[second:]))
    return results


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"], ids=["LF", "CRLF", "CR"])
def test_each_line_ending_frames_the_same_events(newline: bytes) -> None:
    stream = b"data: one" + newline + newline + b"data: two" + newline + newline
    events = decode(stream, flush=False)
    assert datas(events) == ["one", "two"]
    assert all(event.event == "message" and event.id is None for event in events)


def test_mixed_line_endings_in_one_stream() -> None:
    stream = b"data: a\r\n\r\ndata: b\n\ndata: c\r\rdata: d\r\n\n"
    assert datas(decode(stream, flush=False)) == ["a", "b", "c", "d"]


def test_crlf_split_across_two_reads_is_one_line_end() -> None:
    decoder = SSEDecoder()
    assert datas(decoder.feed(b"data: one\r")) == []
    # The LF that completes the CRLF must not count as a second (blank) line...
    assert datas(decoder.feed(b"\ndata: two\r")) == []
    # ...so the event dispatches only at the real blank line.
    assert datas(decoder.feed(b"\n\r\n")) == ["one\ntwo"]


def test_lone_cr_at_end_of_read_followed_by_data_is_still_a_line_end() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: one\r") == []
    assert datas(decoder.feed(b"\r")) == ["one"]
    assert datas(decoder.feed(b"data: two\r\r")) == ["two"]


def test_cr_pending_survives_an_empty_read() -> None:
    decoder = SSEDecoder()
    decoder.feed(b"data: one\r")
    assert decoder.feed(b"") == []
    assert datas(decoder.feed(b"\ndata: two\n\n")) == ["one\ntwo"]
    assert decoder.flush() == []


def test_comments_are_skipped_and_counted() -> None:
    decoder = SSEDecoder()
    events = decoder.feed(b": keep-alive\n\ndata: x\n: in the middle\n\n:\n\n")
    assert datas(events) == ["x"]
    assert decoder.comments == 3


def test_multiline_data_joins_with_newlines() -> None:
    events = decode(b"data: first\ndata:second\ndata:  indented\ndata\n\n", flush=False)
    # One leading space is stripped, no more; a bare `data` field is an empty line of data.
    assert datas(events) == ["first\nsecond\n indented\n"]


def test_empty_data_field_still_dispatches_an_event() -> None:
    assert datas(decode(b"data:\n\n", flush=False)) == [""]


def test_blank_lines_without_data_dispatch_nothing() -> None:
    assert decode(b"\n\n\r\n: c\n\nevent: ping\n\n", flush=False) == []


def test_event_and_id_fields() -> None:
    stream = b"event: content_block_delta\nid: 7\ndata: {}\n\ndata: after\n\nid\ndata: cleared\n\n"
    events = decode(stream, flush=False)
    assert [(e.event, e.id, e.data) for e in events] == [
        ("content_block_delta", "7", "{}"),
        ("message", "7", "after"),  # the event type resets, the last event id persists
        ("message", "", "cleared"),
    ]


def test_id_with_nul_is_ignored_and_unknown_fields_are_dropped() -> None:
    events = decode(b"id: 1\n\nid: a\0b\nretry: 10\nfoo: bar\ndata: x\n\n", flush=False)
    assert [(e.id, e.data) for e in events] == [("1", "x")]


def test_utf8_character_split_across_reads() -> None:
    text = "naïve ☃ 𝄞 done"
    stream = encode_data(f'{{"content":"{text}"}}'.encode())
    snowman = stream.index("☃".encode())
    clef = stream.index("𝄞".encode())
    events = decode(stream[: snowman + 1], stream[snowman + 1 : clef + 2], stream[clef + 2 :], flush=False)
    assert datas(events) == [f'{{"content":"{text}"}}']
    assert "\ufffd" not in events[0].data


def test_flush_dispatches_an_unterminated_last_event() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: one\n\ndata: two") == [SSEEvent("one")]
    assert datas(decoder.flush()) == ["two"]
    assert decoder.flush() == []


def test_flush_dispatches_an_event_missing_only_the_blank_line() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"event: end\ndata: last\n") == []
    assert [(e.event, e.data) for e in decoder.flush()] == [("end", "last")]


def test_the_encoder_round_trips() -> None:
    stream = b'event: ping\ndata: {"a":1}\n\n' + encode_data(b"[DONE]")
    assert [(e.event, e.data) for e in decode(stream)] == [("ping", '{"a":1}'), ("message", "[DONE]")]


SAMPLE = (
    b": keep-alive\r\n\r\n"
    b'data: {"choices":[{"delta":{"content":"h\xc3\xa9llo \xe2\x98\x83"}}]}\r\n\r\n'
    b"event: delta\rid: 3\rdata: a\rdata: b\r\r"
    b'data: {"x":"\xf0\x9d\x84\x9e"}\n\n'
    b"data: [DONE]\n\n"
)


def test_every_split_point_gives_the_same_events() -> None:
    expected = decode(SAMPLE)
    assert len(expected) == 4
    assert [e.data for e in expected][-1] == "[DONE]"
    for result in every_split(SAMPLE):
        assert result == expected


def test_every_split_point_of_an_unterminated_stream() -> None:
    stream = b"data: one\r\ndata: two\r\n\r\ndata: tail\r"
    expected = [SSEEvent("one\ntwo"), SSEEvent("tail")]
    for result in every_split(stream):
        assert result == expected


def recorded_stream(shared_fixtures: Path) -> bytes:
    lines = (shared_fixtures / "vercel-ai" / "openai-text.chunks.txt").read_bytes().splitlines()
    return b"".join(encode_data(line) for line in lines if line.strip()) + b"data: [DONE]\n\n"


def test_byte_at_a_time_equals_one_read_on_a_recorded_stream(shared_fixtures: Path) -> None:
    stream = recorded_stream(shared_fixtures)
    whole = decode(stream)
    decoder = SSEDecoder()
    trickled: list[SSEEvent] = []
    for position in range(len(stream)):
        trickled += decoder.feed(stream[position : position + 1])
    trickled += decoder.flush()
    assert trickled == whole
    assert len(whole) == stream.count(b"\n\n")
    assert whole[-1].data == "[DONE]"


def test_recorded_stream_with_crlf_and_odd_reads(shared_fixtures: Path) -> None:
    stream = recorded_stream(shared_fixtures)
    crlf = stream.replace(b"\n", b"\r\n")
    expected = decode(stream)
    for size in (7, 13, 4096):
        reads = [crlf[i : i + size] for i in range(0, len(crlf), size)]
        assert decode(*reads) == expected


def test_a_leading_utf8_bom_is_not_data_even_split_across_reads() -> None:
    stream = b"\xef\xbb\xbfdata: first\n\ndata: second\n\n"
    for cut in range(len(stream) + 1):
        decoder = SSEDecoder()
        events = decoder.feed(stream[:cut]) + decoder.feed(stream[cut:])
        assert [event.data for event in events] == ["first", "second"], cut
