"""The input-token estimate for `count_tokens` when the provider cannot count exactly.

A quarter of the UTF-8 bytes of the JSON of `system`, `messages` and `tools` (English runs at
about four characters a token, and the JSON punctuation stands in for the chat template's own
tokens), with each image or document counted as 1,600 tokens instead of its base64 data (about
what Anthropic charges for a 1-megapixel image).
"""

from __future__ import annotations

from typing import Any

import orjson

MEDIA_TOKENS = 1600


def estimate_input_tokens(body: dict[str, Any]) -> int:
    media = [0]
    stripped = _strip_media(
        {"system": body.get("system"), "messages": body.get("messages"), "tools": body.get("tools")}, media
    )
    return (len(orjson.dumps(stripped)) + 3) // 4 + media[0] * MEDIA_TOKENS


def _strip_media(value: Any, media: list[int]) -> Any:
    if isinstance(value, dict):
        if value.get("type") in ("image", "document") and isinstance(value.get("source"), dict):
            media[0] += 1
            return {"type": value["type"]}
        return {key: _strip_media(item, media) for key, item in value.items()}
    if isinstance(value, list):
        return [_strip_media(item, media) for item in value]
    return value
