"""The admission estimate counts the whole prompt an upstream bills (issue 20, finding 1), in
every door's format, with each provider's rule for images, audio and documents."""

from __future__ import annotations

import base64
import struct
import zlib

import pytest

from sluicegate.api.chat_completions.schemas import parse_chat_request
from sluicegate.api.gemini.translate import parse_generate_request
from sluicegate.api.messages.translate import parse_messages_request
from sluicegate.api.responses.request import parse_responses_request
from sluicegate.core.request import ChatRequest
from sluicegate.governance.media_tokens import (
    anthropic_image,
    gemini_image,
    image_size,
    openai_image,
)
from sluicegate.governance.prompt_estimate import prompt_estimate
from sluicegate.governance.tokens import TokenCounter

HI = [{"role": "user", "content": "hi"}]
DESCRIPTION = "Finds the orders of a customer by name, date range and status. " * 64  # 4 KB


def png(width: int, height: int) -> str:
    """A PNG's first bytes, as base64: enough for its size to be read."""
    header = struct.pack(">II", width, height) + b"\x08\x02\x00\x00\x00"
    ihdr = struct.pack(">I", 13) + b"IHDR" + header + struct.pack(">I", zlib.crc32(b"IHDR" + header))
    return base64.b64encode(b"\x89PNG\r\n\x1a\n" + ihdr + b"\x00" * 64).decode()


def chat(body: dict[str, object]) -> ChatRequest:
    return parse_chat_request({"model": "gpt-4o", "messages": HI, **body})


def test_tools_functions_and_schemas_are_counted() -> None:
    bare = prompt_estimate(chat({}))
    tool = {"type": "function", "function": {"name": "find_orders", "description": DESCRIPTION,
                                             "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}
    with_tools = prompt_estimate(chat({"tools": [tool] * 200}))
    assert with_tools - bare >= 200 * len(DESCRIPTION) // 4  # before: not counted at all
    functions = prompt_estimate(chat({"functions": [tool["function"]] * 200}))
    assert functions - bare >= 200 * len(DESCRIPTION) // 4
    schema = {"type": "json_schema", "json_schema": {"name": "s", "schema": {"description": DESCRIPTION}}}
    assert prompt_estimate(chat({"response_format": schema})) - bare >= len(DESCRIPTION) // 4


def test_settings_are_not_prompt() -> None:
    assert prompt_estimate(chat({"temperature": 0.5, "max_tokens": 9, "stream": True, "user": "u" * 400})) == (
        prompt_estimate(chat({}))
    )


def test_the_estimate_errs_high_against_the_tokenizer_in_any_script() -> None:
    counter = TokenCounter()
    encoding = counter.encoding("o200k_base")
    texts = [
        DESCRIPTION,
        "def f(x):\n    return {'a': [1, 2, 3], 'b': x ** 2}\n" * 40,
        "日本語のテキストはトークンが多くなります。" * 50,
        "Ünïcödé façade naïveté " * 60,
        '{"type": "object", "properties": {"name": {"type": "string"}}}' * 30,
    ]
    for text in texts:
        estimate = prompt_estimate(ChatRequest(model="gpt-4o", messages=[{"role": "user", "content": text}], raw={}))
        assert estimate >= len(encoding.encode_ordinary(text)), text[:30]


def test_an_anthropic_body_counts_its_system_tools_and_documents() -> None:
    bare = prompt_estimate(parse_messages_request({"model": "claude", "max_tokens": 5, "messages": HI}))
    body = {
        "model": "claude",
        "max_tokens": 5,
        "system": [{"type": "text", "text": DESCRIPTION}],
        "messages": HI,
        "tools": [{"name": "t", "description": DESCRIPTION, "input_schema": {"type": "object"}}],
    }
    assert prompt_estimate(parse_messages_request(body)) - bare >= 2 * len(DESCRIPTION) // 4
    pdf = base64.b64encode(b"%PDF-1.4 " + b"1 0 obj << /Type /Page >> endobj " * 3 + b"/Type /Pages").decode()
    document = {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": pdf}}
    with_pdf = {"model": "claude", "max_tokens": 5,
                "messages": [{"role": "user", "content": [document, {"type": "text", "text": "hi"}]}]}
    assert prompt_estimate(parse_messages_request(with_pdf), "anthropic") - bare >= 3 * 3000  # three pages


def test_a_responses_body_counts_tools_schema_and_the_stored_conversation() -> None:
    parsed = parse_responses_request(
        {
            "model": "gpt-4o",
            "input": "hi",
            "instructions": "Be brief.",
            "tools": [{"type": "function", "name": "t", "description": DESCRIPTION, "parameters": {}}],
            "text": {"format": {"type": "json_schema", "name": "s", "schema": {"description": DESCRIPTION}}},
        }
    )
    alone = prompt_estimate(parsed.chat_request([]))
    assert alone >= 2 * len(DESCRIPTION) // 4
    history = [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": DESCRIPTION}]}]
    assert prompt_estimate(parsed.chat_request(history)) - alone >= len(DESCRIPTION) // 4


def test_a_gemini_body_counts_its_system_tools_and_images_as_images() -> None:
    big_png = base64.b64encode(base64.b64decode(png(1024, 1024)) + b"\x00" * 400_000).decode()
    body = {
        "systemInstruction": {"parts": [{"text": DESCRIPTION}]},
        "contents": [{"role": "user", "parts": [{"inlineData": {"mimeType": "image/png", "data": big_png}}]}],
        "tools": [{"functionDeclarations": [{"name": "t", "description": DESCRIPTION}]}],
    }
    estimate = prompt_estimate(parse_generate_request(body, "gemini-2.5-flash", stream=False), "gemini")
    assert estimate >= 2 * len(DESCRIPTION) // 4
    assert estimate < 2 * len(DESCRIPTION) // 4 + 5_000  # the image by its size, not its 500 KB of base64


@pytest.mark.parametrize(
    ("kind", "width", "height", "expected"),
    [
        ("openai", 1024, 1024, 85 + 170 * 4),  # 768 x 768: four tiles
        ("openai", 4096, 1024, 85 + 170 * 4),  # fitted in 2048 px: 2048 x 512, four tiles
        ("openai", 200, 200, 85 + 170),
        ("anthropic", 1000, 1000, 1334),  # 1,000,000 / 750
        ("anthropic", 3000, 1500, 1600),  # fitted in 1568 px, at most 1,600
        ("gemini", 300, 300, 258),
        ("gemini", 1000, 1000, 258 * 4),
    ],
)
def test_an_inline_image_costs_its_providers_rule(kind: str, width: int, height: int, expected: int) -> None:
    url = f"data:image/png;base64,{png(width, height)}"
    text = {"type": "text", "text": "what is this?"}
    image = {"type": "image_url", "image_url": {"url": url}}

    def estimate(*parts: object) -> int:
        return prompt_estimate(ChatRequest(model="m", messages=[{"role": "user", "content": list(parts)}], raw={}), kind)

    assert estimate(text, image) - estimate(text) == expected


def test_image_sizes_are_read_from_their_headers() -> None:
    assert image_size(png(640, 480)) == (640, 480)
    gif = base64.b64encode(b"GIF89a" + struct.pack("<HH", 31, 17) + b"\x00" * 8).decode()
    assert image_size(gif) == (31, 17)
    jpeg = base64.b64encode(
        b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
        + b"\xff\xc0\x00\x11\x08" + struct.pack(">HH", 300, 500) + b"\x03\x01\x22\x00" + b"\x00" * 16
    ).decode()
    assert image_size(jpeg) == (500, 300)
    assert image_size(base64.b64encode(b"not an image").decode()) is None


def test_an_image_of_unknown_size_counts_as_the_largest_its_provider_bills() -> None:
    by_url = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/cat.png"}}] * 100}]
    request = ChatRequest(model="m", messages=by_url, raw={})
    assert prompt_estimate(request, "openai") >= 100 * openai_image(None, None) == 100 * 1445
    assert prompt_estimate(request, "anthropic") >= 100 * anthropic_image(None) == 100 * 1600
    assert prompt_estimate(request, "gemini") >= 100 * gemini_image(None) == 100 * 2322
    assert prompt_estimate(request, "local") >= 100 * 2322  # not one of the three: the highest
    assert openai_image(None, "low") == 85


def test_audio_is_counted_by_its_length() -> None:
    seconds, rate = 3, 16_000
    header = b"RIFF" + struct.pack("<I", 36 + seconds * rate * 2) + b"WAVEfmt " + struct.pack(
        "<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16
    ) + b"data" + struct.pack("<I", seconds * rate * 2)
    wav = base64.b64encode(header + b"\x00" * (seconds * rate * 2)).decode()
    part = {"type": "input_audio", "input_audio": {"data": wav, "format": "wav"}}
    request = ChatRequest(model="m", messages=[{"role": "user", "content": [part]}], raw={})
    assert 3 * 32 <= prompt_estimate(request) <= 3 * 32 + 10
