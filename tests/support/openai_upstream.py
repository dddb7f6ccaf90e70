"""A local server speaking OpenAI's exact chat-completions wire format, for provider tests.

It stands in for a hosted OpenAI-compatible upstream (the real one is out of reach here).
Replies are queued by the test (`upstream.enqueue(...)`): raw SSE byte chunks sent as they
are, so recorded streams and quirky servers can be replayed byte for byte; with nothing
queued it streams an echo of the last user message. It records every request it receives
and notices when a client closes the connection mid-stream.
"""

from __future__ import annotations

import base64
import struct
from typing import Any

import orjson
from aiohttp import web

from tests.support.wire_server import Reply, WireServer

__all__ = ["OpenAIUpstream", "Reply", "chunk", "sse"]


def sse(payload: Any) -> bytes:
    return b"data: " + (payload if isinstance(payload, bytes) else orjson.dumps(payload)) + b"\n\n"


def chunk(content: str | None = None, finish: str | None = None, index: int = 0, **delta: Any) -> bytes:
    if content is not None:
        delta["content"] = content
    return sse(
        {
            "id": "chatcmpl-upstream",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": "upstream-model",
            "choices": [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
    )


class OpenAIUpstream(WireServer[dict[str, Any]]):
    path_prefix = "/v1"

    def _routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/embeddings", self._embeddings)
        app.router.add_post("/v1/completions", self._completions)

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        """Legacy completions: each prompt answered with its words reversed, whole or as
        `text_completion` chunks (one per word), usage last when asked for."""
        body = orjson.loads(await request.read())
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        if self.replies:
            return await self._send(request, self.replies.popleft())
        prompts = body["prompt"] if isinstance(body["prompt"], list) else [body["prompt"]]
        head = {"id": "cmpl-upstream", "object": "text_completion", "created": 1700000000, "model": body["model"]}
        answers = [" ".join(reversed(str(prompt).split())) for prompt in prompts]
        usage = {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
        if not body.get("stream"):
            choices = [
                {"text": text, "index": i, "logprobs": None, "finish_reason": "stop"} for i, text in enumerate(answers)
            ]
            return await self._send(request, Reply(body=orjson.dumps({**head, "choices": choices, "usage": usage})))
        chunks = []
        for i, text in enumerate(answers):
            for word in text.split(" "):
                choice = {"text": word + " ", "index": i, "logprobs": None, "finish_reason": None}
                chunks.append(sse({**head, "choices": [choice]}))
            chunks.append(sse({**head, "choices": [{"text": "", "index": i, "logprobs": None, "finish_reason": "stop"}]}))
        if (body.get("stream_options") or {}).get("include_usage"):
            chunks.append(sse({**head, "choices": [], "usage": usage}))
        chunks.append(b"data: [DONE]\n\n")
        return await self._send(request, Reply(chunks=chunks))

    async def _embeddings(self, request: web.Request) -> web.StreamResponse:
        """OpenAI's embeddings answer: a fixed function of each text (3 numbers), base64 when asked."""
        body = orjson.loads(await request.read())
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        if self.replies:
            return await self._send(request, self.replies.popleft())
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = []
        for index, item in enumerate(inputs):
            text = item if isinstance(item, str) else " ".join(map(str, item))
            vector = [len(text) / 100, (sum(map(ord, text)) % 89) / 89, 0.5]
            encoded: Any = vector
            if body.get("encoding_format") == "base64":
                encoded = base64.b64encode(struct.pack("<3f", *vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": encoded})
        tokens = sum(len(str(item).split()) for item in inputs)
        answer = {
            "object": "list",
            "data": data,
            "model": body["model"],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        return await self._send(request, Reply(body=orjson.dumps(answer)))

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        return await self._send(request, self.replies.popleft() if self.replies else self._echo(body))

    @staticmethod
    def _echo(body: dict[str, Any]) -> Reply:
        text = str(body["messages"][-1].get("content"))
        words = text.split(" ")
        if not body.get("stream"):
            answer = {
                "id": "chatcmpl-upstream",
                "object": "chat.completion",
                "created": 1700000000,
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": 5,
                    "completion_tokens": len(words),
                    "total_tokens": 5 + len(words),
                },
            }
            return Reply(body=orjson.dumps(answer))
        chunks = [chunk(role="assistant", content="")]
        chunks += [chunk(word if i == 0 else " " + word) for i, word in enumerate(words)]
        chunks.append(chunk(finish="stop"))
        if (body.get("stream_options") or {}).get("include_usage"):
            chunks.append(
                sse(
                    {
                        "id": "chatcmpl-upstream",
                        "object": "chat.completion.chunk",
                        "created": 1700000000,
                        "model": body["model"],
                        "choices": [],
                        "usage": {
                            "prompt_tokens": 5,
                            "completion_tokens": len(words),
                            "total_tokens": 5 + len(words),
                        },
                    }
                )
            )
        chunks.append(b"data: [DONE]\n\n")
        return Reply(chunks=chunks)
