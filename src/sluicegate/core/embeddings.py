"""The canonical embeddings request and answer every embeddings provider deals in."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sluicegate.core.events import Started

# Texts, or inputs already tokenized (lists of token ids): OpenAI's request takes either.
Inputs = list[str] | list[list[int]]


@dataclass(slots=True)
class EmbeddingRequest:
    """A validated `/v1/embeddings` request. `raw` is the client's JSON as sent, forwarded with
    only the model swapped to an upstream that speaks OpenAI's format (nothing lost)."""

    model: str
    inputs: Inputs
    raw: dict[str, Any]
    encoding_format: str = "float"  # float | base64
    dimensions: int | None = None
    user: str | None = None
    upstream_model: str | None = None  # set by routing when a wildcard entry derives it
    # whether the key may use a model (the fallbacks routing may try), set at admission
    may_use: Callable[[str], bool] | None = None

    @property
    def tokenized(self) -> bool:
        return bool(self.inputs) and not isinstance(self.inputs[0], str)


@dataclass(slots=True)
class Embeddings:
    """One vector per input, in input order, and the input tokens they cost.

    `body` is an OpenAI-format answer received as it was (an OpenAI-compatible upstream): the
    door sends it on rather than re-encoding vectors it never needed to read."""

    vectors: list[list[float]]
    prompt_tokens: int
    estimated: bool = False  # the upstream sent no count: the gateway's own estimate
    body: dict[str, Any] | None = None
    origin: Started | None = None  # the deployment that answered, its attempts
    extra: dict[str, Any] = field(default_factory=dict)


def input_tokens_estimate(request: EmbeddingRequest) -> int:
    """About 1 token per 4 characters (exact for token ids) and 2 for each input's framing:
    what admission holds, and what an upstream that reports no count is charged."""
    if request.tokenized:
        return sum(len(ids) + 2 for ids in request.inputs)
    return sum(math.ceil(len(str(text)) / 4) + 2 for text in request.inputs)
