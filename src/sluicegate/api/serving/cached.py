"""The response cache at the serving layer: looking a request up, replaying a kept answer,
and keeping a stream that ended whole."""

from __future__ import annotations

from collections.abc import AsyncGenerator

from starlette.requests import Request

from sluicegate.core.cache import HEADER, Plan, ResponseCache, complete, plan_for, size_of
from sluicegate.core.completion import Completion, fold_events
from sluicegate.core.events import (
    Batch,
    Event,
    Seam,
    Started,
)
from sluicegate.core.exchange import Exchange
from sluicegate.core.request import ChatRequest
from sluicegate.gateway import Gateway
from sluicegate.wiring.registry import Route


async def cache_lookup(
    request: Request, exchange: Exchange, gateway: Gateway, route: Route, chat: ChatRequest
) -> tuple[Plan | None, list[Batch] | None]:
    """Whether the request is cached (its plan) and, on a hit, the kept answer's batches."""
    if gateway.cache is None:
        return None, None
    plan = plan_for(getattr(route.config, "cache", None), request.headers.get(HEADER), exchange.door, exchange.key_id, chat)
    if plan is None:
        return None, None
    kept = await gateway.cache.fetch(plan.key)
    exchange.response_headers[HEADER] = "hit" if kept is not None else "miss"
    exchange.cache_hit = kept is not None
    return plan, kept


async def from_cache(batches: list[Batch]) -> Completion:
    return fold_events([event for batch in batches for event in batch])


async def recorded(events: AsyncGenerator[Batch, None], cache: ResponseCache, plan: Plan) -> AsyncGenerator[Batch, None]:
    """The provider's stream, passed on as it comes and kept once it ended whole. Its `Started`
    is kept without the deployment and attempts: a replay has neither."""
    kept: list[Batch] = []
    try:
        async for batch in events:
            kept.append([_for_replay(event) for event in batch if type(event) is not Seam])  # a replay has no seam
            yield batch
    finally:
        await events.aclose()
    if complete(kept):
        cache.put(plan.key, kept, plan.ttl_s, size_of(kept))


def _for_replay(event: Event) -> Event:
    if type(event) is Started:
        return Started(upstream_model=event.upstream_model, attempts=0, prompt_tokens=event.prompt_tokens)
    return event
