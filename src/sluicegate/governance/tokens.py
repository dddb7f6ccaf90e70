"""Token counts the gateway makes itself, when an upstream sends no usage (a client that left
mid-stream, an upstream that never reports it).

In order of preference: the local model's own tokenizer (provider `local`); OpenAI's encodings
for OpenAI model families (`bpe-openai` ships cl100k and o200k inside the package, so counting
works offline; `tiktoken` would download them at run time); otherwise an estimate of one token
per 4 characters, rounded up, marked `estimate` in the ledger.

The admission path uses only `prompt_estimate` (governance/prompt_estimate.py: the whole prompt,
tools, schemas and media included, erring high): a reservation must be cheap, and it is
corrected when the request settles.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import threading
import warnings
from collections.abc import Iterator
from typing import Any

from sluicegate.core.events import Usage
from sluicegate.core.exchange import Exchange
from sluicegate.governance.prompt_estimate import PER_MESSAGE, prompt_estimate

log = logging.getLogger("sluicegate.tokens")
_OPENAI_FAMILY = re.compile(r"^(gpt-|o\d|chatgpt-|ft:gpt-|text-davinci|davinci|babbage|codex-)")
_CL100K = re.compile(r"^(gpt-3\.5|gpt-4(?!o|\.\d|-o)(-|$)|ft:gpt-3\.5|ft:gpt-4(?!o))")


def openai_encoding_name(model: str) -> str | None:
    """The encoding of an OpenAI model family, or None for other models."""
    name = model.rsplit("/", 1)[-1].lower()
    if not _OPENAI_FAMILY.match(name):
        return None
    return "cl100k_base" if _CL100K.match(name) else "o200k_base"


def message_parts(message: dict[str, Any]) -> Iterator[str]:
    """The text of one message, piece by piece: role, string content, text parts, tool calls."""
    yield str(message.get("role") or "")
    content = message.get("content")
    if isinstance(content, str):
        yield content
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, dict):
                yield str(part.get("text") or "")
    for call in message.get("tool_calls") or ():
        function = (call.get("function") or {}) if isinstance(call, dict) else {}
        yield str(function.get("name") or "") + str(function.get("arguments") or "")


def message_text(messages: list[dict[str, Any]]) -> list[str]:
    """The text of each message (what the tokenizers count)."""
    return ["".join(message_parts(message)) for message in messages]


def chars_estimate(text: str) -> int:
    return math.ceil(len(text) / 4)


class TokenCounter:
    def __init__(self) -> None:
        self._encodings: dict[str, Any] = {}
        self._lock = threading.Lock()

    def encoding(self, name: str) -> Any:
        """The bpe-openai encoding (loaded once, ~1 s: call it off the event loop)."""
        with self._lock:
            encoding = self._encodings.get(name)
            if encoding is None:
                with warnings.catch_warnings():  # its data loader uses a deprecated importlib call
                    warnings.simplefilter("ignore", DeprecationWarning)
                    import bpe_openai

                    encoding = self._encodings[name] = bpe_openai.get_encoding(name)
            return encoding

    def warm(self, models: list[str]) -> None:
        """Load the encodings these models need, in a thread, so the first count is quick."""
        names = {n for n in (openai_encoding_name(m) for m in models) if n}
        if names:
            threading.Thread(target=lambda: [self.encoding(n) for n in names], daemon=True).start()

    async def usage_for(self, exchange: Exchange, provider: Any) -> tuple[Usage, str]:
        """The exchange's usage and where it came from: "upstream", "tokenizer" or "estimate"."""
        if exchange.usage is not None:
            return exchange.usage, "upstream"
        output = "".join(exchange.output_parts)
        if not exchange.committed and not output:
            # no upstream began an answer (refused by the gateway, no deployment reachable,
            # every attempt failed before its first byte): nothing was generated, nothing billed
            return Usage(0, 0), "none"
        try:
            return await self._count(exchange, provider, output)
        except Exception:
            log.exception("counting the tokens of %s failed; estimating", exchange.request_id)
            return self._estimate(exchange, output), "estimate"

    async def _count(self, exchange: Exchange, provider: Any, output: str) -> tuple[Usage, str]:
        request = exchange.request
        if exchange.provider == "local" and provider is not None:
            count_text = getattr(provider, "count_text_tokens", None)
            prompt = exchange.prompt_tokens_hint
            if prompt is None and request is not None:
                prompt = await provider.count_tokens(request)
            completion = await count_text(output) if count_text is not None else None
            if prompt is not None and completion is not None:
                return Usage(prompt, completion, estimated=True), "tokenizer"
        name = openai_encoding_name(exchange.upstream_model or exchange.model)
        if name is not None:
            return await asyncio.to_thread(self._count_openai, name, exchange, output), "tokenizer"
        return self._estimate(exchange, output), "estimate"

    def _count_openai(self, name: str, exchange: Exchange, output: str) -> Usage:
        encoding = self.encoding(name)
        prompt = exchange.prompt_tokens_hint
        if prompt is None:
            texts = message_text(exchange.request.messages) if exchange.request else []
            prompt = sum(len(encoding.encode_ordinary(t)) + PER_MESSAGE for t in texts) + PER_MESSAGE
        return Usage(prompt, len(encoding.encode_ordinary(output)) if output else 0, estimated=True)

    @staticmethod
    def _estimate(exchange: Exchange, output: str) -> Usage:
        prompt = exchange.prompt_tokens_hint
        if prompt is None:
            prompt = prompt_estimate(exchange.request)
        return Usage(prompt, chars_estimate(output), estimated=True)
