"""Canonical events -> OpenAI's `text_completion` objects: streamed chunks (each choice's text
as it comes, `[DONE]` last) and whole answers.

Logprobs are the legacy shape (`tokens`, `token_logprobs`, `top_logprobs` as {token: logprob},
`text_offset`): made from the embedded model's per-token entries, or passed on as an
OpenAI-compatible upstream sent them (a Passthrough's `logprobs`)."""

from __future__ import annotations

from typing import Any

import orjson

from sluicegate.core.completion import Completion
from sluicegate.core.events import Batch, Finish, Metadata, Passthrough, Started, TextDelta, Usage
from sluicegate.errors import GatewayError
from sluicegate.http.sse import DONE, encode_data


class LegacyLogprobs:
    """One choice's logprobs in the legacy shape; `text_offset` counts from the choice's start."""

    def __init__(self) -> None:
        self.offset = 0

    def skip(self, text: str) -> None:
        self.offset += len(text)

    def convert(self, entries: list[dict[str, Any]]) -> dict[str, Any]:
        converted: dict[str, Any] = {"tokens": [], "token_logprobs": [], "top_logprobs": [], "text_offset": []}
        for entry in entries:
            token = str(entry.get("token", ""))
            converted["tokens"].append(token)
            converted["token_logprobs"].append(entry.get("logprob"))
            top = entry.get("top_logprobs") or []
            converted["top_logprobs"].append({str(t.get("token")): t.get("logprob") for t in top})
            converted["text_offset"].append(self.offset)
            self.offset += len(token)
        return converted


class CompletionChunkEncoder:
    def __init__(self, completion_id: str, created: int, model: str, include_usage: bool, logprobs: bool) -> None:
        self.head: dict[str, Any] = {
            "id": completion_id,
            "object": "text_completion",
            "created": created,
            "model": model,
        }
        self.include_usage = include_usage
        self.logprobs = logprobs
        self.usage: Usage | None = None
        self._offsets: dict[int, LegacyLogprobs] = {}

    def _chunk(self, choice: int, text: str, finish: str | None = None, logprobs: Any = None) -> bytes:
        body = {
            **self.head,
            "choices": [{"text": text, "index": choice, "logprobs": logprobs, "finish_reason": finish}],
        }
        return encode_data(orjson.dumps(body))

    def open(self, started: Started) -> bytes:
        return b""  # a text_completion stream has no opening chunk: the first text is first

    def encode_batch(self, batch: Batch) -> bytes:
        out = []
        for event in batch:
            kind = type(event)
            if kind is TextDelta:
                delta: TextDelta = event  # type: ignore[assignment]
                offsets = self._offsets.setdefault(delta.choice, LegacyLogprobs())
                logprobs = None
                if delta.logprobs is not None:
                    logprobs = offsets.convert(delta.logprobs)
                else:
                    offsets.skip(delta.text)
                out.append(self._chunk(delta.choice, delta.text, None, logprobs))
            elif kind is Passthrough:  # an upstream's own legacy logprobs
                passthrough: Passthrough = event  # type: ignore[assignment]
                if "logprobs" in passthrough.choice_fields:
                    out.append(self._chunk(passthrough.choice, "", None, passthrough.choice_fields["logprobs"]))
            elif kind is Finish:
                finish: Finish = event  # type: ignore[assignment]
                out.append(self._chunk(finish.choice, "", finish.reason))
            elif kind is Usage:
                self.usage = event  # type: ignore[assignment]
            elif kind is Metadata:
                meta: Metadata = event  # type: ignore[assignment]
                if meta.system_fingerprint is not None:
                    self.head["system_fingerprint"] = meta.system_fingerprint
        return b"".join(out)

    def close(self) -> bytes:
        tail = b""
        if self.include_usage and self.usage is not None:
            tail = encode_data(orjson.dumps({**self.head, "choices": [], "usage": _usage(self.usage)}))
        return tail + DONE

    def fail(self, error: GatewayError) -> bytes:
        return encode_data(error.to_json()) + DONE


def _usage(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
    }


def completion_body(completion: Completion, completion_id: str, created: int, model: str) -> dict[str, Any]:
    choices = []
    for choice in completion.choices:
        logprobs = choice.choice_extra.get("logprobs")
        if logprobs is None and choice.logprobs is not None:
            logprobs = LegacyLogprobs().convert(choice.logprobs.get("content") or [])
        choices.append(
            {
                "text": choice.content or "",
                "index": choice.index,
                "logprobs": logprobs,
                "finish_reason": choice.finish_reason or "stop",
            }
        )
    body: dict[str, Any] = {
        "id": completion_id,
        "object": "text_completion",
        "created": created,
        "model": model,
        "choices": choices,
    }
    if completion.system_fingerprint:
        body["system_fingerprint"] = completion.system_fingerprint
    body["usage"] = _usage(completion.usage) if completion.usage is not None else None
    return body
