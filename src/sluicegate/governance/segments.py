"""The bill of an answer that several deployments wrote (mid-stream fail-over): each part at
its own deployment's price, the parts kept in the ledger row's `segments` column.

The failed deployments' usage comes with their seams (estimated: they died before reporting);
the last deployment's is what remains of the answer's summed usage, so the row's tokens are
the sum of its segments' and its cost the sum of their costs.
"""

from __future__ import annotations

from typing import Any

import orjson

from sluicegate.core.events import Usage
from sluicegate.core.exchange import Exchange
from sluicegate.governance.price_book import PriceBook
from sluicegate.governance.pricing import cost_nanos
from sluicegate.store.records import nanos_to_usd


def split_bill(exchange: Exchange, usage: Usage, source: str, prices: PriceBook) -> tuple[int, str]:
    """The answer's cost (nano-dollars) and its segments as the ledger keeps them (JSON)."""
    parts: list[dict[str, Any]] = []
    total = 0
    prompt, completion = usage.prompt_tokens, usage.completion_tokens
    start = 0
    for seam in exchange.seams:
        part = seam.usage
        cost = cost_nanos(prices.price(seam.model or exchange.served_by, seam.deployment), part)
        parts.append(_segment(seam.model, seam.deployment, seam.upstream_model, start, part, cost, "estimate" if part.estimated else "upstream"))
        total += cost
        prompt -= part.prompt_tokens
        completion -= part.completion_tokens
        start = seam.offset
    last = Usage(
        max(0, prompt),
        max(0, completion),
        cached_tokens=min(usage.cached_tokens, max(0, prompt)),
        cache_creation_tokens=min(usage.cache_creation_tokens, max(0, prompt)),
        reasoning_tokens=usage.reasoning_tokens,
    )
    cost = cost_nanos(prices.price(exchange.served_by, exchange.deployment), last)
    parts.append(_segment(exchange.served_by, exchange.deployment, exchange.upstream_model, start, last, cost, source))
    total += cost
    return total, orjson.dumps(parts).decode()


def _segment(
    model: str | None, deployment: str, upstream_model: str | None, offset: int, usage: Usage, cost: int, source: str
) -> dict[str, Any]:
    return {
        "model": model,
        "deployment": deployment,
        "upstream_model": upstream_model,
        "offset": offset,  # where its text begins in the answer (characters)
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "usage_source": source,
        "cost_nanos": cost,
        "cost_usd": nanos_to_usd(cost),
    }
