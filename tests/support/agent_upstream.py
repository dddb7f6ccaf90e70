"""Upstreams that play a coding agent's model, on the exact wire of Anthropic's Messages API
and of an OpenAI-compatible chat-completions server, for the Claude Code and Codex tests.

The script is one tool round trip, decided from what each request holds: with no tool result
in the conversation yet, the model calls the agent's own file-reading tool (Claude Code's
`Read`, Codex's `exec_command`) on the file it was told to read; once a tool result is there,
it answers with that result's text. So the file's first line reaches the final answer only
if the agent really ran its tool on its working directory and sent the output back. A request
offering no such tool (a CLI's side request: a title, a summary) gets a short text answer.
Every request is recorded, streamed or whole, as each wire sends it.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from tests.support.anthropic_upstream import AnthropicUpstream, event, whole_message
from tests.support.openai_upstream import OpenAIUpstream, chunk, sse
from tests.support.wire_server import Reply

ANSWER_PREFIX = "The tool returned:\n"
SIDE_ANSWER = "OK."


def read_call(tool_names: list[str], file_name: str) -> tuple[str, dict[str, Any]] | None:
    """(tool, arguments) that read `file_name` with the agent's own tool, if it offered one."""
    if "Read" in tool_names:
        return "Read", {"file_path": file_name}
    if "exec_command" in tool_names:
        return "exec_command", {"cmd": f"cat {file_name}"}
    if "shell" in tool_names:
        return "shell", {"command": ["cat", file_name]}
    return None


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(_text(part.get("text", part.get("content", ""))) for part in content if isinstance(part, dict))
    return ""


class AgentAnthropicUpstream(AnthropicUpstream):
    """Anthropic's wire, answering as a model doing one tool round trip."""

    label = "scripted Anthropic agent upstream"

    def __init__(self) -> None:
        super().__init__()
        self.file_path = ""  # the file the model reads (absolute, for Claude Code's Read)

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request)
        return await self._send(request, self.replies.popleft() if self.replies else self._script(body))

    def _script(self, body: dict[str, Any]) -> Reply:
        result = self._tool_result(body)
        names = [tool.get("name", "") for tool in body.get("tools") or [] if isinstance(tool, dict)]
        call = read_call(names, self.file_path) if result is None else None
        message = {
            "id": f"msg_{len(self.requests)}",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 20, "output_tokens": 1},
        }
        payloads: list[dict[str, Any]] = [{"type": "message_start", "message": message}]
        if call is not None:
            name, arguments = call
            block = {"type": "tool_use", "id": f"toolu_{len(self.requests)}", "name": name, "input": {}}
            delta = {"type": "input_json_delta", "partial_json": orjson.dumps(arguments).decode()}
            stop = "tool_use"
        else:
            text = SIDE_ANSWER if result is None else ANSWER_PREFIX + result
            block = {"type": "text", "text": ""}
            delta = {"type": "text_delta", "text": text}
            stop = "end_turn"
        payloads += [
            {"type": "content_block_start", "index": 0, "content_block": block},
            {"type": "content_block_delta", "index": 0, "delta": delta},
            {"type": "content_block_stop", "index": 0},
            {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None}, "usage": {"output_tokens": 9}},
            {"type": "message_stop"},
        ]
        if not body.get("stream"):
            return Reply(body=orjson.dumps(whole_message(payloads)))
        return Reply(chunks=[event(payload) for payload in payloads])

    @staticmethod
    def _tool_result(body: dict[str, Any]) -> str | None:
        found: str | None = None
        for message in body.get("messages") or []:
            for block in message.get("content") if isinstance(message.get("content"), list) else []:
                if isinstance(block, dict) and block.get("type") == "tool_result":
                    found = _text(block.get("content"))
        return found


class AgentOpenAIUpstream(OpenAIUpstream):
    """An OpenAI-compatible chat-completions wire, answering as a model doing one tool round trip."""

    def __init__(self) -> None:
        super().__init__()
        self.file_path = ""

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        return await self._send(request, self.replies.popleft() if self.replies else self._script(body))

    def _script(self, body: dict[str, Any]) -> Reply:
        results = [_text(m.get("content")) for m in body.get("messages") or [] if m.get("role") == "tool"]
        result = results[-1] if results else None
        names = [(tool.get("function") or {}).get("name", "") for tool in body.get("tools") or []]
        call = read_call(names, self.file_path) if result is None else None
        usage = {"prompt_tokens": 20, "completion_tokens": 9, "total_tokens": 29}
        if call is not None:
            name, arguments = call
            tool_call = {
                "id": f"call_{len(self.requests)}",
                "type": "function",
                "function": {"name": name, "arguments": orjson.dumps(arguments).decode()},
            }
            message: dict[str, Any] = {"role": "assistant", "content": None, "tool_calls": [tool_call]}
            finish = "tool_calls"
        else:
            message = {"role": "assistant", "content": SIDE_ANSWER if result is None else ANSWER_PREFIX + result}
            finish = "stop"
        if not body.get("stream"):
            answer = {
                "id": "chatcmpl-agent",
                "object": "chat.completion",
                "created": 1700000000,
                "model": body["model"],
                "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
                "usage": usage,
            }
            return Reply(body=orjson.dumps(answer))
        chunks = [chunk(role="assistant", content="")]
        if call is not None:
            first = {"index": 0, **message["tool_calls"][0]}
            chunks.append(chunk(tool_calls=[first]))
        else:
            chunks.append(chunk(message["content"]))
        chunks.append(chunk(finish=finish))
        chunks.append(
            sse({"id": "chatcmpl-agent", "object": "chat.completion.chunk", "created": 1700000000,
                 "model": body["model"], "choices": [], "usage": usage})
        )
        chunks.append(b"data: [DONE]\n\n")
        return Reply(chunks=chunks)
