"""Reading Anthropic's Messages stream off the wire, and checking it against the documented order.

The grammar (Anthropic's "Streaming Messages" page): `message_start`, then per content block
`content_block_start`, its `content_block_delta`s and `content_block_stop` (one block open at a
time, indices 0, 1, 2... in order), then `message_delta` and `message_stop`; `ping` may come
anywhere after `message_start`; an `error` event ends the stream with nothing after it.
"""

from __future__ import annotations

from typing import Any

import orjson

DELTA_FOR_BLOCK = {
    "text": {"text_delta", "citations_delta"},
    "thinking": {"thinking_delta", "signature_delta"},
    "tool_use": {"input_json_delta"},
    "redacted_thinking": set(),
}


def parse_events(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    """Each event as (name, data), checking the framing exactly: `event: NAME` and one `data:`
    line whose JSON `type` is NAME, LF line ends, a blank line after every event."""
    assert b"\r" not in raw
    assert raw.endswith(b"\n\n"), raw[-120:]
    events: list[tuple[str, dict[str, Any]]] = []
    for block in raw[:-2].split(b"\n\n"):
        lines = block.split(b"\n")
        assert len(lines) == 2, block[:200]
        assert lines[0].startswith(b"event: ") and lines[1].startswith(b"data: "), block[:200]
        name = lines[0][len(b"event: ") :].decode()
        data = orjson.loads(lines[1][len(b"data: ") :])
        assert data["type"] == name, (name, data)
        events.append((name, data))
    return events


def check_sequence(events: list[tuple[str, dict[str, Any]]]) -> None:
    """Assert the documented order, block bookkeeping and the shape of every event's fields."""
    names = [name for name, _ in events]
    assert names[0] == "message_start", names
    _check_message_start(events[0][1])
    if names[-1] == "error":
        assert names.count("error") == 1
        error = events[-1][1]
        assert set(error) == {"type", "error"} and set(error["error"]) == {"type", "message"}
        body = [e for e in events[1:-1] if e[0] != "ping"]
    else:
        assert names[-2:] == ["message_delta", "message_stop"], names
        assert events[-1][1] == {"type": "message_stop"}
        _check_message_delta(events[-2][1])
        body = [e for e in events[1:-2] if e[0] != "ping"]
    assert "message_start" not in [name for name, _ in body]
    open_block: dict[str, Any] | None = None
    next_index = 0
    for name, data in body:
        if name == "content_block_start":
            assert open_block is None, "a block started while another was open"
            assert data["index"] == next_index
            block = data["content_block"]
            _check_block_start(block)
            open_block = {"index": data["index"], "type": block["type"]}
            next_index += 1
        elif name == "content_block_delta":
            assert open_block is not None and data["index"] == open_block["index"]
            assert set(data) == {"type", "index", "delta"}
            assert data["delta"]["type"] in DELTA_FOR_BLOCK[open_block["type"]], (open_block, data)
        elif name == "content_block_stop":
            assert open_block is not None and data == {
                "type": "content_block_stop",
                "index": open_block["index"],
            }
            open_block = None
        else:
            raise AssertionError(f"unexpected event {name} inside the message")
    if names[-1] != "error":
        assert open_block is None, "message_delta while a block was open"


def _check_message_start(data: dict[str, Any]) -> None:
    assert set(data) == {"type", "message"}
    message = data["message"]
    assert {"id", "type", "role", "model", "content", "stop_reason", "stop_sequence", "usage"} <= set(message)
    assert message["id"].startswith("msg_")
    assert message["type"] == "message" and message["role"] == "assistant"
    assert message["content"] == [] and message["stop_reason"] is None and message["stop_sequence"] is None
    assert isinstance(message["usage"]["input_tokens"], int)
    assert isinstance(message["usage"]["output_tokens"], int)


def _check_message_delta(data: dict[str, Any]) -> None:
    assert set(data) == {"type", "delta", "usage"}
    assert set(data["delta"]) >= {"stop_reason", "stop_sequence"}
    assert data["delta"]["stop_reason"] in {
        "end_turn",
        "max_tokens",
        "stop_sequence",
        "tool_use",
        "pause_turn",
        "refusal",
        "model_context_window_exceeded",
    }
    if data["delta"]["stop_reason"] == "stop_sequence":
        assert isinstance(data["delta"]["stop_sequence"], str)
    else:
        assert data["delta"]["stop_sequence"] is None
    assert isinstance(data["usage"]["output_tokens"], int)


def _check_block_start(block: dict[str, Any]) -> None:
    kind = block["type"]
    if kind == "text":
        assert block == {"type": "text", "text": ""}
    elif kind == "thinking":
        assert block == {"type": "thinking", "thinking": "", "signature": ""}
    elif kind == "tool_use":
        assert set(block) == {"type", "id", "name", "input"} and block["input"] == {}
        assert block["id"] and block["name"]
    elif kind == "redacted_thinking":
        assert set(block) == {"type", "data"}
    else:
        raise AssertionError(f"unexpected block {block}")


def blocks_of(events: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """The content blocks the events build, as a client accumulates them."""
    blocks: list[dict[str, Any]] = []
    for name, data in events:
        if name == "content_block_start":
            block = dict(data["content_block"])
            if block["type"] == "tool_use":
                block["partial_json"] = ""
            blocks.append(block)
        elif name == "content_block_delta":
            block, delta = blocks[data["index"]], data["delta"]
            if delta["type"] == "text_delta":
                block["text"] += delta["text"]
            elif delta["type"] == "thinking_delta":
                block["thinking"] += delta["thinking"]
            elif delta["type"] == "signature_delta":
                block["signature"] = delta["signature"]
            elif delta["type"] == "input_json_delta":
                block["partial_json"] += delta["partial_json"]
    for block in blocks:
        if block["type"] == "tool_use":
            block["input"] = orjson.loads(block.pop("partial_json") or "{}")
    return blocks
