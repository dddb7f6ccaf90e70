"""What images, audio and documents in a prompt cost in tokens, by each provider's published rule,
for the admission estimate (governance/prompt_estimate.py).

Images: OpenAI's tile rule (fit in 2048 x 2048, shortest side down to 768, 170 tokens per 512-px
tile plus 85; `detail: low` 85; gpt-4o-mini counts 5,667 per tile plus 2,833); Anthropic's
(width x height) / 750 after fitting the long edge in 1,568 px (at most 1,600); Gemini's 258 per
768-px tile (258 for an image at most 384 px each way). The size is read from the image's
header when the image is inline (base64; PNG, GIF, WebP, JPEG); an image given by URL, or one
whose size cannot be read, counts as the largest its provider bills for one image (OpenAI
1,445, gpt-4o-mini 48,169, Anthropic 1,600, Gemini 2,322: a 2048-px square in nine tiles).
Providers other than those three, or several behind one model: the highest of the rules.

Audio: 32 tokens a second (Gemini's rate, the highest published); the length is read from a WAV
header, else assumed from the size at 32 kbit/s. Documents (PDF): 3,000 tokens a page (Anthropic
counts 1,500-3,000 text tokens a page, plus the page as an image), the pages counted in the
file; a file whose pages cannot be counted, one token per 16 bytes; by URL, 100 pages' worth.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import struct

OPENAI_TILE, OPENAI_BASE, OPENAI_LOW = 170, 85, 85
MINI_TILE, MINI_BASE = 5_667, 2_833  # gpt-4o-mini bills images at these counts
ANTHROPIC_PIXELS_PER_TOKEN, ANTHROPIC_LONG_EDGE, ANTHROPIC_MOST = 750, 1_568, 1_600
GEMINI_TILE, GEMINI_SMALL = 258, 384
AUDIO_TOKENS_PER_S, AUDIO_BYTES_PER_S = 32, 4_000
PDF_TOKENS_PER_PAGE, PDF_BYTES_PER_TOKEN, PDF_BY_URL = 3_000, 16, 300_000
_HEADER_B64 = 65_536  # base64 characters decoded to find an image's size (48 KB of it)
_PAGE = re.compile(rb"/Type\s*/Page(?![a-zA-Z])")

Size = tuple[int, int] | None


def openai_image(size: Size, detail: str | None, mini: bool = False) -> int:
    if detail == "low":
        return MINI_BASE if mini else OPENAI_LOW
    width, height = size or (2048, 768)  # unknown: the most tiles one image can take (4 x 2)
    fit = min(1.0, 2048 / max(width, height, 1))
    short = min(1.0, 768 / max(min(width, height) * fit, 1))
    tiles = math.ceil(width * fit * short / 512) * math.ceil(height * fit * short / 512)
    return MINI_BASE + MINI_TILE * tiles if mini else OPENAI_BASE + OPENAI_TILE * tiles


def anthropic_image(size: Size) -> int:
    if size is None:
        return ANTHROPIC_MOST
    width, height = size
    scale = min(1.0, ANTHROPIC_LONG_EDGE / max(width, height, 1))
    return min(ANTHROPIC_MOST, math.ceil(width * scale * height * scale / ANTHROPIC_PIXELS_PER_TOKEN))


def gemini_image(size: Size) -> int:
    width, height = size or (2048, 2048)
    if width <= GEMINI_SMALL and height <= GEMINI_SMALL:
        return GEMINI_TILE
    return GEMINI_TILE * math.ceil(width / 768) * math.ceil(height / 768)


def image_tokens(kind: str, model: str, size: Size, detail: str | None) -> int:
    """One image's tokens for a provider kind (`openai`, `anthropic`, `gemini`; else the most)."""
    if kind == "openai":
        return openai_image(size, detail, "gpt-4o-mini" in model)
    if kind == "anthropic":
        return anthropic_image(size)
    if kind == "gemini":
        return gemini_image(size)
    return max(openai_image(size, detail, "gpt-4o-mini" in model), anthropic_image(size), gemini_image(size))


def data_url_payload(url: str) -> str | None:
    """The base64 payload of a `data:...;base64,` URL, else None."""
    if not url.startswith("data:"):
        return None
    head, _, payload = url.partition(",")
    return payload if head.endswith(";base64") else None


def _decode_head(payload: str, characters: int = _HEADER_B64) -> bytes:
    head = payload[: characters - characters % 4]
    try:
        return base64.b64decode(head)
    except (binascii.Error, ValueError):
        return b""


def image_size(payload: str) -> Size:
    """Width and height from the header of a base64 image (PNG, GIF, WebP, JPEG), or None."""
    data = _decode_head(payload)
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return width, height
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return width, height
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP" and len(data) >= 30:
        return _webp_size(data)
    if data[:2] == b"\xff\xd8":
        return _jpeg_size(data)
    return None


def _webp_size(data: bytes) -> Size:
    chunk = data[12:16]
    if chunk == b"VP8X":
        return 1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(data[27:30], "little")
    if chunk == b"VP8 " and len(data) >= 30:
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 25:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


def _jpeg_size(data: bytes) -> Size:
    at = 2
    while at + 9 < len(data):
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            at += 2
            continue
        length = int.from_bytes(data[at + 2 : at + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[at + 5 : at + 9])
            return width, height
        at += 2 + length
    return None


def audio_tokens(payload: str, audio_format: str | None) -> int:
    seconds = None
    if audio_format in (None, "wav"):
        data = _decode_head(payload, 64)
        if data[:4] == b"RIFF" and data[8:12] == b"WAVE" and len(data) >= 32:
            byte_rate = int.from_bytes(data[28:32], "little")
            if byte_rate > 0:
                seconds = len(payload) * 3 / 4 / byte_rate
    if seconds is None:
        seconds = len(payload) * 3 / 4 / AUDIO_BYTES_PER_S
    return math.ceil(seconds * AUDIO_TOKENS_PER_S)


def pdf_tokens(payload: str | None) -> int:
    """A PDF's tokens: its pages at 3,000 each; its size when they cannot be counted."""
    if payload is None:
        return PDF_BY_URL
    try:
        data = base64.b64decode(payload)
    except (binascii.Error, ValueError):
        return math.ceil(len(payload) / PDF_BYTES_PER_TOKEN)
    pages = len(_PAGE.findall(data))
    return pages * PDF_TOKENS_PER_PAGE if pages else math.ceil(len(data) / PDF_BYTES_PER_TOKEN)
