"""An embeddings request served through the same keys, limits, budgets, routing and ledger as a
chat request, whichever door it came in by (OpenAI's `/v1/embeddings`, Gemini's
`embedContent`): the exchange filled as the hooks read it, and the answer's usage recorded."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sluicegate.core.embeddings import EmbeddingRequest, Embeddings, input_tokens_estimate
from sluicegate.core.events import Usage
from sluicegate.core.exchange import Exchange
from sluicegate.core.request import ChatRequest
from sluicegate.gateway import Gateway


def routed(exchange: Exchange, gateway: Gateway, embedding: EmbeddingRequest) -> Awaitable[Embeddings]:
    """The call that embeds `embedding` on its model entry, with the exchange made ready for
    admission: a stand-in chat request (no messages, no completion) and the input's size."""
    route = gateway.models.resolve(embedding.model)
    embedding.upstream_model = route.upstream_model
    exchange.model = embedding.model
    admitted = ChatRequest(
        model=embedding.model, messages=[], raw={}, max_tokens=0, upstream_model=route.upstream_model
    )
    exchange.request = admitted
    # admission gives the stand-in the key's model check; routing asks it before each fallback
    embedding.may_use = lambda name: admitted.may_use is None or admitted.may_use(name)
    exchange.prompt_tokens_hint = input_tokens_estimate(embedding)
    exchange.provider = route.provider.kind
    exchange.served_by = route.provider.name
    exchange.upstream_model = embedding.upstream_model or str(getattr(route.provider, "upstream_model", ""))
    embed: Callable[[EmbeddingRequest], Awaitable[Embeddings]] = route.provider.embed  # type: ignore[attr-defined]
    return embed(embedding)  # every model entry's Router has `embed`


def record(exchange: Exchange, result: Embeddings) -> None:
    """What answered and what it used, for the ledger and the metrics."""
    if result.origin is not None:
        exchange.deployment = result.origin.deployment or exchange.deployment
        exchange.attempts = result.origin.attempts
        exchange.upstream_model = result.origin.upstream_model or exchange.upstream_model
    exchange.usage = Usage(result.prompt_tokens, 0, estimated=result.estimated)
    exchange.finish_reason = "stop"


