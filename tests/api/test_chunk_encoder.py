"""The OpenAI chunk encoder, event by event and batch by batch."""

from __future__ import annotations

import json

from sluicegate.api.chat_completions.chunks import ChunkEncoder
from sluicegate.core.events import Finish, Started, TextDelta, ToolCallDelta, Usage


def frames(data: bytes) -> list[dict[str, object]]:
    assert data.endswith(b"\n\n")
    return [json.loads(block.removeprefix(b"data: ")) for block in data[:-2].split(b"\n\n")]


def test_a_batch_encodes_as_its_events_one_after_another() -> None:
    events = [Started(), TextDelta("Hel"), TextDelta("lo"), Finish("stop"), Usage(3, 2)]
    one_by_one = ChunkEncoder("chatcmpl-x", 1, "m", include_usage=True)
    batched = ChunkEncoder("chatcmpl-x", 1, "m", include_usage=True)
    expected = b"".join(one_by_one.encode(event) for event in events) + one_by_one.usage_chunk()
    assert batched.encode_batch(events) + batched.usage_chunk() == expected
    chunks = frames(expected)
    assert [c["choices"][0]["delta"] for c in chunks[:-1]] == [  # type: ignore[index]
        {"role": "assistant", "content": ""},
        {"content": "Hel"},
        {"content": "lo"},
        {},
    ]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == {
        "prompt_tokens": 3,
        "completion_tokens": 2,
        "total_tokens": 5,
    }


def test_each_choice_opens_with_one_role_chunk() -> None:
    encoder = ChunkEncoder("chatcmpl-x", 1, "m", include_usage=False)
    data = encoder.encode_batch(
        [TextDelta("a", 0), TextDelta("b", 1), TextDelta("c", 0), Finish("length", 1)]
    )
    chunks = frames(data)
    roles = [(c["choices"][0]["index"], c["choices"][0]["delta"]) for c in chunks]  # type: ignore[index]
    assert roles == [
        (0, {"role": "assistant", "content": ""}),
        (0, {"content": "a"}),
        (1, {"role": "assistant", "content": ""}),
        (1, {"content": "b"}),
        (0, {"content": "c"}),
        (1, {}),
    ]
    assert all("usage" not in c for c in chunks)
    assert encoder.usage_chunk() == b""


def test_tool_call_fragments_carry_id_and_name_only_when_given() -> None:
    encoder = ChunkEncoder("chatcmpl-x", 1, "m", include_usage=False)
    encoder.start(0)
    first = frames(encoder.encode(ToolCallDelta(0, "", id="call_1", name="get_weather")))[0]
    later = frames(encoder.encode(ToolCallDelta(0, '{"city"')))[0]
    assert first["choices"][0]["delta"] == {  # type: ignore[index]
        "tool_calls": [
            {
                "index": 0,
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": ""},
            }
        ]
    }
    assert later["choices"][0]["delta"] == {  # type: ignore[index]
        "tool_calls": [{"index": 0, "function": {"arguments": '{"city"'}}]
    }


def test_a_tool_calls_extra_fields_ride_on_the_call_streamed_and_whole() -> None:
    from sluicegate.api.chat_completions.response import completion_body
    from sluicegate.core.completion import completion_events, fold_events

    extra = {"extra_content": {"google": {"thought_signature": "c2ln"}}}
    events = [ToolCallDelta(0, "", "call_1", "f", extra=extra), ToolCallDelta(0, '{"a": 1}'), Finish("tool_calls")]
    encoder = ChunkEncoder("chatcmpl-x", 1, "m", include_usage=False)
    calls = [c["choices"][0]["delta"].get("tool_calls") for c in frames(encoder.encode_batch(events))]  # type: ignore[index,union-attr]
    assert calls[0] == [
        {"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}, **extra}
    ]
    assert calls[1] == [{"index": 0, "function": {"arguments": '{"a": 1}'}}]
    completion = fold_events(events)
    [call] = completion.choices[0].tool_calls
    assert call.extra == extra and call.arguments == '{"a": 1}'
    message = completion_body(completion, "chatcmpl-x", 1, "m")["choices"][0]["message"]
    assert message["tool_calls"] == [
        {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}, **extra}
    ]
    assert next(e for e in completion_events(completion) if isinstance(e, ToolCallDelta)).extra == extra


def test_a_plain_text_chunk_is_the_bytes_the_general_path_writes() -> None:
    """The shortcut for choice 0's text writes exactly what `_chunk` would, metadata included."""
    from sluicegate.core.events import Metadata

    for include_usage in (True, False):
        encoder = ChunkEncoder("chatcmpl-x", 1, "m", include_usage=include_usage)
        encoder.open(Started())
        encoder.encode(Metadata(system_fingerprint="fp_1", service_tier="default"))
        for text in ("plain", 'say "hi"', "é\u2028\x00</script>", ""):
            assert encoder.encode(TextDelta(text)) == encoder._chunk(0, {"content": text})
            chunk = frames(encoder.encode(TextDelta(text)))[0]
            assert chunk["system_fingerprint"] == "fp_1" and chunk["choices"][0]["delta"] == {"content": text}  # type: ignore[index]
            assert ("usage" in chunk) is include_usage


def test_an_answer_that_opens_with_a_call_says_content_null_in_its_role_chunk() -> None:
    """As OpenAI (and the recorded Groq and DeepSeek streams): `content: null` before calls,
    so no empty text part appears; `""` before text. A choice whose first event is a call
    opens with one chunk carrying the role, `content: null` and the call."""
    encoder = ChunkEncoder("chatcmpl-x", 1, "m", include_usage=False)
    opened = encoder.open(Started(calls_first=True))
    data = encoder.encode_batch([ToolCallDelta(0, "", id="call_1", name="f"), ToolCallDelta(0, "{}"), Finish("tool_calls")])
    deltas = [c["choices"][0]["delta"] for c in frames(opened + data)]  # type: ignore[index]
    call = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}}
    assert deltas == [
        {"role": "assistant", "content": None},
        {"tool_calls": [call]},
        {"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]},
        {},
    ]
    assert frames(ChunkEncoder("c", 1, "m", False).open(Started()))[0]["choices"][0]["delta"] == {  # type: ignore[index]
        "role": "assistant",
        "content": "",
    }
    second = ChunkEncoder("chatcmpl-y", 1, "m", include_usage=False)
    second.open(Started())
    first = frames(second.encode(ToolCallDelta(0, "", id="call_2", name="f", choice=1)))
    assert first[0]["choices"][0] == {  # type: ignore[index]
        "index": 1,
        "delta": {"role": "assistant", "content": None, "tool_calls": [{**call, "id": "call_2"}]},
        "logprobs": None,
        "finish_reason": None,
    }
