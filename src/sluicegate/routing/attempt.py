"""One request's attempts at a model's deployments: what a failure allows (`verdict`), a
deployment and its health, the calls made on a provider (the request as that provider takes
it), and the bookkeeping of one request's way through them (`Run`, `Deadline`). The Router
(routing/router.py) orders the attempts; mid-stream fail-over (routing/failover.py) makes more.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from sluicegate.core.completion import Completion
from sluicegate.core.embeddings import EmbeddingRequest, Embeddings
from sluicegate.core.events import Batch, Started
from sluicegate.core.request import ChatRequest, native_body_for, relay_for
from sluicegate.errors import (
    ConnectionsBusyError,
    GatewayError,
    InvalidRequestError,
    RateLimitError,
    ServiceUnavailableError,
    UpstreamConfigError,
    UpstreamError,
)
from sluicegate.model_config.policies import CooldownPolicy
from sluicegate.routing.health import Breaker, DeploymentStats

if TYPE_CHECKING:
    from sluicegate.providers.base import Provider
    from sluicegate.routing.router import Router

T = TypeVar("T")
Stream = AsyncGenerator[Batch, None]
Opened = tuple[tuple[Stream, Batch], "Deployment", int]  # (stream, its first batch), who, attempts


class Verdict(enum.Enum):
    """What a failure before the upstream committed allows."""

    FINAL = "final"  # raise it
    NEXT = "next"  # try the next deployment
    RETRY = "retry"  # may retry this one


def verdict(error: GatewayError) -> Verdict:
    if isinstance(error, UpstreamConfigError):
        return Verdict.NEXT  # this deployment's key, URL or model is wrong: the next may be right
    if isinstance(error, ConnectionsBusyError):
        return Verdict.NEXT  # the gateway's own pool for this deployment is full: the next has its own
    if isinstance(error, UpstreamError | RateLimitError | ServiceUnavailableError):
        return Verdict.RETRY  # network, timeouts, 429, 5xx
    return Verdict.FINAL  # the client's request is at fault: the same everywhere


class Deployment:
    """One upstream of a model: its provider, its share of traffic, its health and counters."""

    __slots__ = ("breaker", "name", "provider", "router", "stats", "weight")

    def __init__(self, name: str, provider: Provider, weight: float, cooldown: CooldownPolicy) -> None:
        self.name = name
        self.provider = provider
        self.weight = weight
        self.stats = DeploymentStats()
        self.breaker = Breaker(cooldown, self.stats)
        self.router: Router | None = None  # the model it serves (set by the Router)


def for_provider(provider: Provider, request: ChatRequest) -> ChatRequest:
    """The request as `provider` gets it: carrying the client's body when the provider takes
    its wire format as it is (native pass-through), else translated from the typed fields; and
    the door's byte relay when the provider can pass its upstream's answer on as bytes."""
    native = native_body_for(request, provider.native_formats)
    relay = relay_for(request, provider.relay_formats) if request.byte_relay is not None else None
    if native is None and request.native_body is None and relay is request.byte_relay:
        return request
    return replace(request, native_body=native, byte_relay=relay)


async def open_stream(provider: Provider, request: ChatRequest) -> tuple[Stream, Batch]:
    """Start a stream and wait for its first batch: the upstream has committed."""
    inner = provider.stream(for_provider(provider, request))
    try:
        first = await inner.__anext__()
    except StopAsyncIteration:
        return inner, []
    except BaseException:
        await inner.aclose()
        raise
    return inner, first


async def complete_on(provider: Provider, request: ChatRequest) -> Completion:
    return await provider.complete(for_provider(provider, request))


async def embed_on(provider: Provider, request: EmbeddingRequest) -> Embeddings:
    embed = getattr(provider, "embed", None)
    if embed is None:
        raise InvalidRequestError(
            f"The `{provider.kind}` provider has no embeddings API: `{request.model}` cannot answer"
            " /v1/embeddings.",
            code="embeddings_not_supported",
            param="model",
        )
    result: Embeddings = await embed(request)
    return result


def name_origin(started: Started, deployment: Deployment, attempts: int) -> Started:
    """What answered: the deployment, its model entry (a fallback's, when one did), attempts."""
    started.deployment = deployment.name
    started.attempts = attempts
    owner = deployment.router
    if owner is not None:
        started.model = owner.name
        if not started.upstream_model and owner.upstream_model:
            started.upstream_model = owner.upstream_model
    return started


class Deadline:
    """The total timeout of a streamed answer: when it fires it cancels the task that waits on
    the upstream at that moment (if any; otherwise the next wait sees `fired`)."""

    __slots__ = ("fired", "handle", "waiting")

    def __init__(self, when: float) -> None:
        self.fired = False
        self.waiting: asyncio.Task[Any] | None = None
        self.handle = asyncio.get_running_loop().call_at(when, self._fire)

    def _fire(self) -> None:
        self.fired = True
        if self.waiting is not None:
            self.waiting.cancel()


@dataclass(slots=True)
class Run(Generic[T]):
    """One request's way through the deployments."""

    attempt: Callable[[Provider, Any], Awaitable[T]]
    deadline: float | None
    first_byte: bool
    tried: int = 0
    out_of_time: bool = False
    last: tuple[GatewayError, float, Deployment] | None = None
    skipped: list[tuple[Router, Deployment, Any]] = field(default_factory=list)
