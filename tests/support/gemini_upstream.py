"""A local server speaking the Gemini API's exact wire format, for provider tests.

It stands in for `generativelanguage.googleapis.com` (out of reach here):
`POST /{version}/models/{model}:streamGenerateContent?alt=sse` answers Server-Sent Events
framed as Google frames them (`data: <json>\\r\\n\\r\\n`), `:generateContent` a whole JSON
answer, `:countTokens` a count, `:embedContent` / `:batchEmbedContents` vectors (a fixed
function of the text, `outputDimensionality` long, 8 by default). Replies are queued by the test (`enqueue`): events framed as
Google does, or raw bytes written as given (to cut JSON and UTF-8 across writes); with nothing
queued it echoes the last user text. Every request is recorded with its path, query and headers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from tests.support.wire_server import Reply, WireServer


def frame(payload: Any, newline: bytes = b"\r\n") -> bytes:
    data = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    return b"data: " + data + newline + newline


def events_reply(*payloads: Any, newline: bytes = b"\r\n") -> Reply:
    return Reply(chunks=[frame(payload, newline) for payload in payloads])


def recording_lines(path: Path) -> list[bytes]:
    return [line for line in path.read_bytes().splitlines() if line.strip()]


def replay(path: Path, newline: bytes = b"\r\n") -> Reply:
    """A recorded `*.chunks.txt` (one event payload per line) re-framed as Google sends it,
    each line's bytes as recorded."""
    return Reply(chunks=[frame(line, newline) for line in recording_lines(path)])


def error_body(code: int, message: str, status: str, details: list[Any] | None = None) -> bytes:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details is not None:
        error["details"] = details
    return orjson.dumps({"error": error})


def text_event(text: str, finish: str | None = None, usage: dict[str, int] | None = None) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    event: dict[str, Any] = {"candidates": [candidate], "modelVersion": "gemini-test", "responseId": "resp-1"}
    if usage is not None:
        event["usageMetadata"] = usage
    return event


def fake_vector(text: str, dimensions: int = 8) -> list[float]:
    """What the stand-in answers for a text: the same numbers for the same text."""
    return [round(((sum(map(ord, text)) * (i + 1)) % 97) / 97, 6) for i in range(dimensions)]


def embedding_of(request: dict[str, Any]) -> dict[str, Any]:
    text = "".join(part["text"] for part in request["content"]["parts"])
    return {"values": fake_vector(text, request.get("outputDimensionality", 8))}


@dataclass
class Received:
    method: str  # streamGenerateContent | generateContent | countTokens
    model: str  # as in the path: models/gemini-...
    version: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: dict[str, Any]


class GeminiUpstream(WireServer[Received]):
    label = "mock Gemini upstream"
    json_content_type = "application/json; charset=UTF-8"
    handler_cancellation = False

    def _routes(self, app: web.Application) -> None:
        app.router.add_post("/{version}/{target:.+}", self._handle)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        model, _, method = request.match_info["target"].rpartition(":")
        body = orjson.loads(await request.read())
        received = Received(
            method=method,
            model=model,
            version=request.match_info["version"],
            query=dict(request.query),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
        )
        self.requests.append(received)
        reply = self.replies.popleft() if self.replies else self._echo(received)
        return await self._send(request, reply)

    @staticmethod
    def _echo(received: Received) -> Reply:
        if received.method == "embedContent":
            return Reply(body=orjson.dumps({"embedding": embedding_of(received.body)}))
        if received.method == "batchEmbedContents":
            vectors = [embedding_of(item) for item in received.body["requests"]]
            return Reply(body=orjson.dumps({"embeddings": vectors}))
        contents = received.body.get("contents") or [{}]
        texts = [part["text"] for part in contents[-1].get("parts", []) if "text" in part]
        words = " ".join(texts).split(" ")
        if received.method == "countTokens":
            return Reply(body=orjson.dumps({"totalTokens": len(words)}))
        usage = {"promptTokenCount": 5, "candidatesTokenCount": len(words), "totalTokenCount": 5 + len(words)}
        if received.method == "generateContent":
            return Reply(body=orjson.dumps(text_event(" ".join(words), "STOP", usage)))
        events = [text_event(word if i == 0 else " " + word) for i, word in enumerate(words)]
        events.append(text_event("", "STOP", usage))
        return events_reply(*events)
