"""A local server speaking Anthropic's exact Messages wire format, for provider and door tests.

It stands in for api.anthropic.com (out of reach here): `POST /v1/messages` (streamed as
`event: <type>` + `data: <json>` blocks, or whole) and `POST /v1/messages/count_tokens`. Replies
are queued by the test (`upstream.enqueue(Reply(...))`) as raw byte chunks sent as they are, so
recordings replay byte for byte; with nothing queued it answers an echo of the last user text.
It records every request body and its headers.

Also here, for any test that replays Anthropic recordings: reading the shared fixtures as
per-answer SSE segments (`recording`), re-framing vercel-ai's bare JSON lines with the `event:`
lines the real API sends (`frame`), and folding a stream into the whole message the API would
have answered without streaming (`whole_message`).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from tests.support.wire_server import Reply, WireServer

__all__ = ["AnthropicUpstream", "Reply", "event", "frame", "recording", "whole_message"]


def event(payload: Any, newline: bytes = b"\n") -> bytes:
    """One SSE event as Anthropic frames it: `event: <type>` then `data: <json>`."""
    data = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    kind = orjson.loads(data)["type"]
    return b"event: " + kind.encode() + newline + b"data: " + data + newline + newline


def frame(lines: list[bytes], newline: bytes = b"\n") -> list[bytes]:
    """vercel-ai's one-JSON-payload-per-line files -> SSE events with their `event:` lines."""
    return [event(line, newline) for line in lines]


def recording(path: Path) -> list[list[bytes]]:
    """A recording as the answers it holds (vercel-ai files chain several steps of one
    conversation), each a list of SSE events as raw bytes. The Anthropic SDK's files are
    already SSE and are split on their blank lines, their bytes kept exactly."""
    raw = path.read_bytes()
    if path.name.endswith(".chunks.txt"):
        events = frame([line for line in raw.splitlines() if line.strip()])
    else:
        events = [block + b"\n\n" for block in raw.split(b"\n\n") if block.strip()]
    answers: list[list[bytes]] = [[]]
    for item in events:
        answers[-1].append(item)
        if payload_of(item).get("type") == "message_stop":
            answers.append([])
    return [answer for answer in answers if answer]


def payload_of(sse_event: bytes) -> dict[str, Any]:
    data = b"".join(line[5:].lstrip(b" ") for line in sse_event.splitlines() if line.startswith(b"data:"))
    parsed: dict[str, Any] = orjson.loads(data)
    return parsed


def whole_message(payloads: list[dict[str, Any]]) -> dict[str, Any]:
    """The non-streamed message a stream adds up to, as the Anthropic SDK accumulates it."""
    message: dict[str, Any] = {}
    partial: dict[int, str] = {}
    for item in payloads:
        kind = item["type"]
        if kind == "message_start":
            message = orjson.loads(orjson.dumps(item["message"]))
            message.setdefault("content", [])
        elif kind == "content_block_start":
            message["content"].append(dict(item["content_block"]))
        elif kind == "content_block_delta":
            block, delta = message["content"][-1], item["delta"]
            if delta["type"] == "text_delta":
                block["text"] = block.get("text", "") + delta["text"]
            elif delta["type"] == "thinking_delta":
                block["thinking"] = block.get("thinking", "") + delta["thinking"]
            elif delta["type"] == "signature_delta":
                block["signature"] = delta["signature"]
            elif delta["type"] == "input_json_delta":
                partial[item["index"]] = partial.get(item["index"], "") + delta["partial_json"]
            elif delta["type"] == "citations_delta":
                block.setdefault("citations", []).append(delta["citation"])
        elif kind == "content_block_stop":
            text = partial.pop(item["index"], "")
            if text:
                # an input cut by max_tokens is not JSON: the block keeps the input its start gave
                with contextlib.suppress(orjson.JSONDecodeError):
                    message["content"][-1]["input"] = orjson.loads(text)
        elif kind == "message_delta":
            message.update({k: v for k, v in item["delta"].items() if v is not None or k in message})
            message["usage"] = {**message.get("usage", {}), **item.get("usage", {})}
    return message


class AnthropicUpstream(WireServer[dict[str, Any]]):
    label = "mock Anthropic upstream"  # base_url is the origin: the provider adds /v1/messages

    def __init__(self) -> None:
        super().__init__()
        self.paths: list[str] = []

    def reset(self) -> None:
        super().reset()
        self.paths.clear()

    def _routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/messages", self._messages)
        app.router.add_post("/v1/messages/count_tokens", self._count_tokens)

    async def _record(self, request: web.Request) -> dict[str, Any]:
        body: dict[str, Any] = orjson.loads(await request.read())
        self.requests.append(body)
        self.headers.append({name.lower(): value for name, value in request.headers.items()})
        self.paths.append(request.path)
        return body

    async def _count_tokens(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request)
        if self.replies:
            return await self._send(request, self.replies.popleft())
        return web.json_response({"input_tokens": len(orjson.dumps(body["messages"])) // 4})

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request)
        reply = self.replies.popleft() if self.replies else self._echo(body)
        return await self._send(request, reply)

    @staticmethod
    def _echo(body: dict[str, Any]) -> Reply:
        """The last user text, word by word; after a trailing assistant message (prefill), the
        rest of that echo: what follows the assistant's text."""
        messages = body["messages"]
        prefill = ""
        if messages[-1]["role"] == "assistant":
            prefill, messages = _text(messages[-1]["content"]), messages[:-1]
        content = _text(messages[-1]["content"])
        if prefill and content.startswith(prefill):
            content = content[len(prefill) :]
        words = content.split(" ")
        message = {
            "id": "msg_echo",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 5, "output_tokens": 1},
        }
        payloads: list[dict[str, Any]] = [
            {"type": "message_start", "message": message},
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            {"type": "ping"},
        ]
        payloads += [
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}
            for piece in [words[0], *(" " + word for word in words[1:])]
            if piece
        ]
        payloads += [
            {"type": "content_block_stop", "index": 0},
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": len(words)},
            },
            {"type": "message_stop"},
        ]
        if not body.get("stream"):
            return Reply(body=orjson.dumps(whole_message(payloads)))
        return Reply(chunks=[event(payload) for payload in payloads])


def _text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(block.get("text", "") for block in content if isinstance(block, dict))
    return str(content)
