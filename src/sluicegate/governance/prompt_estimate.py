"""The admission estimate of a request's prompt: everything the upstream will bill as input.

Counted: every message (text, tool calls and results, whatever a block carries), the system
prompt, tool and function definitions (names, descriptions, JSON schemas: keys and values),
`response_format` and its schema, and any field the gateway does not know (forwarded to an
upstream of the same format, so billed); images, audio and documents by their providers' rules
(governance/media_tokens.py). Not counted: the sampling settings (`model`, `max_tokens`,
`temperature`...). The body is read as the upstream will get it: the door's own JSON for
OpenAI's and Anthropic's doors (forwarded as sent to an upstream of that format), the
canonical request for the Responses door (whose stored conversation is not in the body).

Text costs a quarter token per character, a whole token per symbol (punctuation, newlines:
code and JSON tokenize densely) and 1.25 tokens per character of scripts beyond ASCII (CJK), so
it errs high against OpenAI's encodings for prose, code, JSON and other scripts alike; each
message adds 3 tokens and each key of an object one. This runs on the request path of every
key with limits or a budget: one pass over the body, no tokenizer, a few C calls per string.
"""

from __future__ import annotations

from typing import Any

from sluicegate.core.request import ChatRequest
from sluicegate.governance.media_tokens import (
    PDF_BY_URL,
    audio_tokens,
    data_url_payload,
    image_size,
    image_tokens,
    pdf_tokens,
)

PER_MESSAGE = 3  # OpenAI's chat format adds about 3 tokens per message, and 3 to prime the reply
# top-level fields that are settings, not prompt
SETTINGS = frozenset(
    {
        "model", "stream", "stream_options", "max_tokens", "max_completion_tokens", "max_output_tokens",
        "temperature", "top_p", "top_k", "n", "seed", "user", "metadata", "logprobs", "top_logprobs",
        "logit_bias", "frequency_penalty", "presence_penalty", "parallel_tool_calls", "store", "stop",
        "stop_sequences", "service_tier", "reasoning_effort", "tool_choice", "thinking", "modalities",
    }
)  # fmt: skip


# letters, digits and spaces: what merges into words; any other character is counted a token
_WORDY = bytes(range(48, 58)) + bytes(range(65, 91)) + bytes(range(97, 123)) + b" "


def text_tokens(text: str) -> int:
    return -(-_weight(text) // 4)


def _weight(text: str) -> int:
    """A text's weight in quarter tokens: a quarter per character, a whole token per symbol
    (punctuation, newlines: code and JSON), 1.25 per character beyond ASCII (CJK)."""
    data = text.encode()
    if len(data) == len(text):
        return len(text) + 3 * len(data.translate(None, _WORDY))
    return len(text) + 2 * (len(data) - len(text))


class _Estimate:
    """One pass over a request's JSON, with the image rule of the provider that answers:
    `chars` of text (a token per 4), and `tokens` counted as such (framing, media)."""

    __slots__ = ("chars", "kind", "model", "tokens")

    def __init__(self, kind: str, model: str) -> None:
        self.kind = kind
        self.model = model
        self.chars = 0
        self.tokens = 0

    def messages(self, messages: Any) -> None:
        if type(messages) is not list:
            self.value(messages)
            return
        self.tokens += PER_MESSAGE * len(messages)
        for message in messages:
            if type(message) is dict:
                for name, item in message.items():
                    if type(item) is str:
                        if name != "role":
                            self.chars += _weight(item)
                    else:
                        self.value(item)
            else:
                self.value(message)

    def value(self, root: Any) -> None:
        """Walks the value without recursion (no depth limit to hit): strings add characters,
        each key of an object its name and a token, media their rule's tokens, scalars one."""
        chars = tokens = 0
        stack = [root]
        pop, push, extend = stack.pop, stack.append, stack.extend
        while stack:
            value = pop()
            kind = type(value)
            if kind is str:
                chars += _weight(value)
            elif kind is dict:
                if "type" in value:
                    media = self.media(value)
                    if media is not None:
                        tokens += media
                        continue
                tokens += len(value)
                for name, item in value.items():
                    chars += len(name)
                    push(item)
            elif kind is list:
                extend(value)
            else:
                tokens += 1  # a number, a boolean, null
        self.chars += chars
        self.tokens += tokens

    def media(self, part: dict[str, Any]) -> int | None:
        """The tokens of an image, audio or document part; None for anything else."""
        kind = part.get("type")
        if kind == "image_url" or kind == "input_image":
            image = part.get("image_url")
            detail = part.get("detail")
            if isinstance(image, dict):
                detail = image.get("detail")
                image = image.get("url")
            return self.image(image if isinstance(image, str) else None, detail)
        if kind == "image":  # Anthropic's
            source = part.get("source")
            if isinstance(source, dict) and source.get("type") == "base64" and isinstance(source.get("data"), str):
                return self.image(None, None, source["data"])
            return self.image(None, None)
        if kind == "input_audio":
            audio = part.get("input_audio")
            if isinstance(audio, dict) and isinstance(audio.get("data"), str):
                return audio_tokens(audio["data"], audio.get("format"))
            return None
        if kind == "file" or kind == "input_file":  # OpenAI's: a PDF as a data URL, or a file id
            file = part.get("file") if kind == "file" else part
            data = file.get("file_data") if isinstance(file, dict) else None
            if isinstance(data, str):
                return pdf_tokens(data_url_payload(data) or data)
            return PDF_BY_URL
        if kind == "document":  # Anthropic's: a PDF, plain text, content blocks, a URL, a file
            source = part.get("source")
            if isinstance(source, dict):
                if source.get("type") == "base64" and isinstance(source.get("data"), str):
                    return pdf_tokens(source["data"])
                if source.get("type") in ("url", "file"):
                    return PDF_BY_URL
            return None  # text or content blocks: counted as text
        return None

    def image(self, url: str | None, detail: Any, payload: str | None = None) -> int:
        if payload is None and url is not None:
            payload = data_url_payload(url)
        size = image_size(payload) if payload else None
        return image_tokens(self.kind, self.model, size, detail if isinstance(detail, str) else None)


def prompt_estimate(request: ChatRequest | None, kind: str = "", model: str = "") -> int:
    """A cheap upper-leaning guess of the prompt's tokens, for admission. `kind` is the
    answering provider's (its image rule; empty: the highest), `model` the upstream model."""
    if request is None:
        return 0
    estimate = _Estimate(kind, model or request.upstream_model or request.model)
    body = request.raw
    # the Responses and Gemini bodies have no `messages`: their canonical messages are read
    if body and request.wire_format not in ("openai_responses", "gemini_generate_content"):
        for name, value in body.items():
            if name == "messages":
                estimate.messages(value)
            elif name not in SETTINGS:
                estimate.value(value)
    else:
        estimate.messages(request.messages)
        if request.tools:
            estimate.value(request.tools)
        if request.response_format:
            estimate.value(request.response_format)
    return PER_MESSAGE + estimate.tokens + -(-estimate.chars // 4)
