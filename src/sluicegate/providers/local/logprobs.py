"""Token log-probabilities and logit bias on the embedded model.

The client's `logit_bias` is a llama.cpp logit-bias sampler, first in its sampler chain; when
the client asked for `logprobs`, the engine copies the position's logits (with the bias
added) so the sampled token's log-probability and the top alternatives can be given in
OpenAI's shape. Nothing of this runs unless the request asks for it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from sluicegate.errors import InvalidRequestError

Logits = npt.NDArray[np.single]


def parse_logit_bias(raw: dict[str, float] | None, n_vocab: int) -> dict[int, float] | None:
    """OpenAI's `{"token id": bias}` with ids checked against this model's vocabulary."""
    if not raw:
        return None
    bias: dict[int, float] = {}
    for key, value in raw.items():
        try:
            token = int(key)
        except ValueError:
            raise InvalidRequestError(
                f"Invalid logit_bias key {key!r}: keys are token ids.", param="logit_bias", code="invalid_value"
            ) from None
        if not 0 <= token < n_vocab:
            raise InvalidRequestError(
                f"Invalid logit_bias key {key!r}: this model's token ids are 0 to {n_vocab - 1}.",
                param="logit_bias",
                code="invalid_value",
            )
        bias[token] = float(value)
    return bias


def token_logprobs(
    logits: Logits, token: int, top: int, piece: Callable[[int], bytes]
) -> dict[str, Any]:
    """One OpenAI `logprobs.content` entry for the sampled token."""
    shifted = logits - np.max(logits)
    log_probs = shifted - np.log(np.sum(np.exp(shifted)))
    entry = _entry(token, float(log_probs[token]), piece)
    alternatives: list[dict[str, Any]] = []
    if top > 0:
        best = np.argpartition(-log_probs, top)[:top]
        best = best[np.argsort(-log_probs[best])]
        alternatives = [_entry(int(t), float(log_probs[t]), piece) for t in best]
    entry["top_logprobs"] = alternatives
    return entry


def _entry(token: int, logprob: float, piece: Callable[[int], bytes]) -> dict[str, Any]:
    raw = piece(token)
    return {
        "token": raw.decode("utf-8", errors="replace"),
        "logprob": max(logprob, -9999.0),
        "bytes": list(raw),
    }
