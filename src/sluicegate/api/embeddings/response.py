"""OpenAI's embeddings answer: `data[i]` in input order, each vector a list of floats or, for
`encoding_format: base64`, its little-endian float32 bytes in base64 (what the openai SDK asks
for by default and decodes)."""

from __future__ import annotations

import base64
import struct
from typing import Any

from sluicegate.core.embeddings import Embeddings


def encode_vector(vector: list[float], encoding: str) -> list[float] | str:
    if encoding == "base64":
        # the standard library's packing: the core install has no numpy
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
    return vector


def embeddings_body(result: Embeddings, model: str, encoding: str) -> dict[str, Any]:
    if result.body is not None:  # an OpenAI-format upstream's answer, sent on as it came
        return {**result.body, "model": model}
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": index, "embedding": encode_vector(vector, encoding)}
            for index, vector in enumerate(result.vectors)
        ],
        "model": model,
        "usage": {"prompt_tokens": result.prompt_tokens, "total_tokens": result.prompt_tokens},
    }
