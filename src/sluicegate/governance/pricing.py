"""Cost from usage and a model's price (USD per million tokens); a model without one costs 0.

Prompt tokens are priced in three parts: cached (`cached_input`, default `input`), written to
the cache (`cache_write`, default `input`) and the rest (`input`); completion tokens, reasoning
included, at `output`. Costs are integer nano-dollars, rounded once per request.
"""

from __future__ import annotations

from sluicegate.core.events import Usage
from sluicegate.model_config.entry import Price

NANOS_PER_TOKEN_UNIT = 1_000  # a price per million tokens, times tokens, times this = nano-USD


def cost_nanos(price: Price | None, usage: Usage) -> int:
    if price is None:
        return 0
    cached = price.cached_input if price.cached_input is not None else price.input
    write = price.cache_write if price.cache_write is not None else price.input
    plain = max(0, usage.prompt_tokens - usage.cached_tokens - usage.cache_creation_tokens)
    total = (
        plain * price.input
        + usage.cached_tokens * cached
        + usage.cache_creation_tokens * write
        + usage.completion_tokens * price.output
    )
    return round(total * NANOS_PER_TOKEN_UNIT)


def estimate_nanos(price: Price | None, prompt_tokens: int, completion_tokens: int) -> int:
    """The most a request may cost before it runs: its prompt at the full input price and its
    completion cap at the output price."""
    if price is None:
        return 0
    return round((prompt_tokens * price.input + completion_tokens * price.output) * NANOS_PER_TOKEN_UNIT)
