"""A model entry served by its deployments: a Provider over Providers, so the doors and the
serving path do not know whether a model has one upstream or five.

Until an upstream commits (its first batch, which begins with `Started`), nothing has reached
the client, so a failure may still be retried (same deployment, exponential backoff with
jitter, or the upstream's Retry-After up to a cap), passed to the model's next deployment in
the order of its strategy, and then to its fallback models. Once one commits, its stream is
passed on as it is; a failure after that is the client's error event, as for any provider,
unless the entry has mid-stream fail-over (routing/failover.py: the next deployment that can
continue an answer takes it over). The `Started` the door sees names the deployment that
answered and the attempts it took.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

from sluicegate.core.completion import Completion
from sluicegate.core.embeddings import EmbeddingRequest, Embeddings
from sluicegate.core.events import Started
from sluicegate.core.request import ChatRequest, WireFormat
from sluicegate.errors import (
    ConnectionsBusyError,
    GatewayError,
    ServiceUnavailableError,
    UpstreamConfigError,
    UpstreamError,
    UpstreamTimeoutError,
)
from sluicegate.model_config.policies import CooldownPolicy, FailoverPolicy, RetryPolicy, Strategy, Timeouts
from sluicegate.routing.attempt import (
    Deadline,
    Deployment,
    Opened,
    Run,
    Stream,
    Verdict,
    complete_on,
    embed_on,
    for_provider,
    name_origin,
    open_stream,
    verdict,
)
from sluicegate.routing.failover import relay
from sluicegate.routing.health import ModelStats

if TYPE_CHECKING:
    from sluicegate.providers.base import Provider
    from sluicegate.routing.shared import SharedCooldowns

log = logging.getLogger("sluicegate.routing")
T = TypeVar("T")

class Router:
    """Serves one model entry; implements the Provider protocol. Counters: `stats` (ModelStats)
    and each deployment's `stats` (DeploymentStats) and `breaker.state`."""

    def __init__(
        self,
        name: str,
        deployments: Sequence[Deployment],
        *,
        strategy: Strategy = "weighted",
        retries: RetryPolicy | None = None,
        cooldown: CooldownPolicy | None = None,
        timeouts: Timeouts | None = None,
        owned_by: str | None = None,
        failover: FailoverPolicy | None = None,
    ) -> None:
        if not deployments:
            raise ValueError(f"model {name!r} has no deployments")
        self.name = name
        self.deployments = list(deployments)
        for deployment in self.deployments:
            deployment.router = self
        self.strategy = strategy
        self.retries = retries or RetryPolicy()
        self.cooldown = cooldown or CooldownPolicy()
        self.timeouts = timeouts or Timeouts()
        self.failover = failover or FailoverPolicy()
        self.stats = ModelStats()
        kinds = {deployment.provider.kind for deployment in self.deployments}
        self.kind = kinds.pop() if len(kinds) == 1 else "mixed"
        # none of its own: each attempt gets the client's body as its deployment declares
        self.native_formats: frozenset[WireFormat] = frozenset()
        self.relay_formats: frozenset[WireFormat] = frozenset()
        self.continues_final = False  # its deployments may; routing/failover.py asks them
        self.owned_by = owned_by or self.deployments[0].provider.owned_by
        self.upstream_model = str(getattr(self.deployments[0].provider, "upstream_model", "") or "")
        self.fallbacks: list[Router] = []
        self.shared: SharedCooldowns | None = None
        self._breaking = False
        self.link([], None)

    def link(self, fallbacks: Sequence[Router], shared: SharedCooldowns | None) -> None:
        """Set the fallback models and the shared cooldown store, once every entry is built.
        Deployments are taken out only where there is somewhere else to go."""
        self.fallbacks = list(fallbacks)
        self._breaking = self.cooldown.enabled and (len(self.deployments) > 1 or bool(self.fallbacks))
        self.shared = shared if self._breaking else None
        if self.shared is not None:
            for deployment in self.deployments:
                self.shared.register(self.name, deployment.name, deployment.breaker)

    # --- the Provider protocol -------------------------------------------------------------

    async def start(self) -> None:
        for deployment in self.deployments:
            await deployment.provider.start()
        if self.shared is not None:
            await self.shared.start()

    async def close(self) -> None:
        if self.shared is not None:
            await self.shared.close()
        for deployment in self.deployments:
            await deployment.provider.close()

    async def count_tokens(self, request: ChatRequest) -> int | None:
        provider = self.deployments[0].provider
        return await provider.count_tokens(for_provider(provider, request))

    def stream(self, request: ChatRequest) -> Stream:
        self.stats.requests += 1
        deadline = self._deadline()
        if self.failover.mid_stream and request.n == 1 and request.prompts is None:
            # a continuation is joined from canonical events: no answer of this entry is relayed as bytes
            return relay(self, replace(request, byte_relay=None) if request.byte_relay else request, deadline)
        return self.follow(lambda: self._attempts(request, deadline, open_stream, True), deadline)

    async def follow(self, opening: Callable[[], Awaitable[Opened]], deadline: float | None) -> Stream:
        """The stream `opening` commits to, within the total timeout: its first batch begins
        with the `Started` naming what answered; a failure is counted on its deployment and
        raised (a GatewayError)."""
        (inner, first), deployment, attempts = await opening()
        owner = deployment.router or self  # a fallback model's deployment answers to its own router
        try:
            if first and type(first[0]) is Started:
                started: Started = first[0]
            else:
                started = Started()
                first.insert(0, started)
            name_origin(started, deployment, attempts)
            yield first
            del first  # passed on: not kept while the stream lasts
            if deadline is None:
                async for batch in inner:
                    yield batch
                    del batch
            else:
                # one timer for the whole answer, not one per chunk
                clock = Deadline(deadline)
                try:
                    while True:
                        if clock.fired:
                            raise TimeoutError
                        clock.waiting = task = asyncio.current_task()
                        try:
                            more = await inner.__anext__()
                        except StopAsyncIteration:
                            break
                        except asyncio.CancelledError:
                            if clock.fired and task is not None and task.uncancel() == 0:
                                raise TimeoutError from None
                            raise
                        finally:
                            clock.waiting = None
                        yield more
                        del more
                finally:
                    clock.handle.cancel()
            deployment.breaker.completed()
        except GatewayError as exc:
            owner._failed(deployment, exc, attempts, committed=True)
            raise
        except Exception as exc:
            if isinstance(exc, TimeoutError) and deadline is not None:
                error: UpstreamError = UpstreamTimeoutError(
                    f"The answer of `{deployment.name}` did not finish within {self.timeouts.total:g} s."
                )
            else:
                error = owner._unreadable(deployment, exc)
            owner._failed(deployment, error, attempts, committed=True)
            raise error from exc
        finally:
            deployment.stats.in_flight -= 1
            await inner.aclose()

    async def complete(self, request: ChatRequest) -> Completion:
        self.stats.requests += 1
        completion, deployment, attempts = await self._attempts(request, self._deadline(), complete_on, False)
        deployment.stats.in_flight -= 1
        deployment.breaker.completed()
        completion.origin = name_origin(completion.origin or Started(), deployment, attempts)
        return completion

    async def embed(self, request: EmbeddingRequest) -> Embeddings:
        """Embeddings, with the same retries, fail-over and fallbacks as a whole answer."""
        self.stats.requests += 1
        result, deployment, attempts = await self._attempts(request, self._deadline(), embed_on, False)
        deployment.stats.in_flight -= 1
        deployment.breaker.completed()
        origin = result.origin or Started()
        origin.deployment = deployment.name
        origin.attempts = attempts
        result.origin = origin
        return result

    # --- attempts ----------------------------------------------------------------------------

    def _deadline(self) -> float | None:
        total = self.timeouts.total
        return None if total is None else asyncio.get_running_loop().time() + total

    def order(self) -> Sequence[Deployment]:
        """The deployments in the order this request tries them."""
        deployments = self.deployments
        if len(deployments) == 1 or self.strategy == "ordered":
            return deployments
        if self.strategy == "least-busy":
            return sorted(deployments, key=lambda d: (d.stats.in_flight, random.random()))
        # weighted random, drawn without replacement (Efraimidis-Spirakis keys)
        return sorted(deployments, key=lambda d: random.random() ** (1.0 / d.weight), reverse=True)

    async def _attempts(
        self,
        request: Any,  # a ChatRequest, or an EmbeddingRequest
        deadline: float | None,
        attempt: Callable[[Provider, Any], Awaitable[T]],
        first_byte: bool,
    ) -> tuple[T, Deployment, int]:
        """Try deployments, then fallback models, until one commits. The winner's `in_flight`
        stays counted; the caller ends it."""
        run = Run(attempt, deadline, first_byte)
        for router in (self, *self.fallbacks):
            routed = request
            if router is not self:
                if request.may_use is not None and not request.may_use(router.name):
                    log.info("model %s: fallback %s skipped: the key may not use it", self.name, router.name)
                    continue
                self.stats.fallbacks += 1
                routed = replace(request, upstream_model=None)
                log.warning("model %s: every deployment failed; falling back to %s", self.name, router.name)
            for deployment in router.order():
                if router._breaking and not deployment.breaker.acquire(time.monotonic()):
                    run.skipped.append((router, deployment, routed))
                    continue
                if run.tried and router is self:
                    self.stats.failovers += 1
                done = await router._try(deployment, routed, run, router.retries.count, acquired=True)
                if done is not None:
                    return done[0], deployment, run.tried
        # Last resort: what the breakers took out, soonest back first, once each, rather than
        # give up with deployments untried. Not those whose upstream asked for a wait.
        now = time.monotonic()
        resort = sorted(
            (s for s in run.skipped if not s[1].breaker.asked), key=lambda s: s[1].breaker.remaining(now)
        )
        for router, deployment, routed in resort:
            log.warning(
                "model %s: trying %s although it is taken out (last resort)", self.name, deployment.name
            )
            done = await router._try(deployment, routed, run, 0, acquired=False)
            if done is not None:
                return done[0], deployment, run.tried
        raise self._exhausted(run)

    async def _try(
        self, deployment: Deployment, request: Any, run: Run[T], retries: int, acquired: bool
    ) -> tuple[T] | None:
        """One deployment, retried up to `retries` times; None when it gave up on it."""
        loop = asyncio.get_running_loop()
        breaker, stats = deployment.breaker, deployment.stats
        for retry in range(retries + 1):
            if run.deadline is not None and loop.time() >= run.deadline:
                if acquired:
                    breaker.release()
                run.out_of_time = True
                raise self._exhausted(run)
            run.tried += 1
            stats.attempts += 1
            if retry:
                stats.retries += 1
            stats.in_flight += 1
            try:
                work = run.attempt(deployment.provider, request)
                if run.deadline is None and (self.timeouts.first_byte is None or not run.first_byte):
                    result = await work
                else:
                    result = await self._bounded(work, run, deployment)
            except GatewayError as exc:
                error = exc
            except Exception as exc:
                error = self._unreadable(deployment, exc)
            except BaseException:
                stats.in_flight -= 1
                if acquired:
                    breaker.release()
                raise
            else:
                breaker.committed()
                return (result,)
            stats.in_flight -= 1
            kind = verdict(error)
            if kind is Verdict.FINAL:
                if acquired:
                    breaker.release()
                error.deployment, error.attempts = deployment.name, run.tried
                raise error
            run.last = (error, time.monotonic(), deployment)
            if isinstance(error, ConnectionsBusyError):  # not the upstream's failure: blame nobody
                if acquired:
                    breaker.release()
                break
            self._failed(deployment, error, run.tried, committed=False)
            wait = self._retry_wait(retry, error) if kind is Verdict.RETRY else None
            if wait is None or retry == retries:
                break
            if run.deadline is not None and loop.time() + wait >= run.deadline:
                break
            await asyncio.sleep(wait)
            if self._breaking and not breaker.acquire(time.monotonic()):
                break  # taken out meanwhile (by its own failures or another replica)
        return None

    async def _bounded(self, work: Awaitable[T], run: Run[T], deployment: Deployment) -> T:
        """The attempt, within the first-byte and total timeouts where they are set."""
        deadline = run.deadline
        wait = self.timeouts.first_byte if run.first_byte else None
        if wait is None and deadline is None:
            return await work
        loop = asyncio.get_running_loop()
        limit = loop.time() + wait if wait is not None else deadline
        if deadline is not None and limit is not None:
            limit = min(limit, deadline)
        try:
            async with asyncio.timeout_at(limit):
                return await work
        except TimeoutError:
            if deadline is not None and loop.time() >= deadline:
                raise UpstreamTimeoutError(
                    f"The model `{self.name}` did not answer within {self.timeouts.total:g} s."
                ) from None
            raise UpstreamTimeoutError(
                f"The upstream of `{deployment.name}` did not start answering within {wait:g} s."
            ) from None

    def _retry_wait(self, retry: int, error: GatewayError) -> float | None:
        """How long to wait before retrying the same deployment; None: move on."""
        if error.retry_after is not None:
            return error.retry_after if error.retry_after <= self.retries.retry_after_cap_s else None
        return self.retries.backoff(retry, random.random())

    def _failed(self, deployment: Deployment, error: GatewayError, attempt: int, committed: bool) -> None:
        """Count a failure; take the deployment out when it fails too often, or when its
        upstream asked for a wait longer than the retry cap."""
        deployment.stats.failures += 1
        now = time.monotonic()
        tripped = False
        if self._breaking:
            tripped = deployment.breaker.failed(now)
            cap = self.retries.retry_after_cap_s
            if error.retry_after is not None and error.retry_after > cap:
                deployment.breaker.hold(now, error.retry_after, asked=True)
                tripped = True
        where = "mid-answer" if committed else f"attempt {attempt}"
        if isinstance(error, UpstreamConfigError):
            log.error(
                "model entry %s, deployment %s (%s): %s Fix this deployment in the config.",
                self.name,
                deployment.name,
                where,
                error.message,
            )
        else:
            log.warning(
                "model %s: deployment %s failed (%s): %s", self.name, deployment.name, where, error.message
            )
        if tripped:
            log.warning(
                "model %s: deployment %s taken out for %.1f s",
                self.name,
                deployment.name,
                deployment.breaker.remaining(now),
            )

    def _unreadable(self, deployment: Deployment, exc: Exception) -> UpstreamError:
        log.exception(
            "model %s: deployment %s: the provider failed on the upstream's answer",
            self.name,
            deployment.name,
        )
        return UpstreamError(
            f"The upstream of `{deployment.name}` sent an answer the gateway could not read."
        )

    def _exhausted(self, run: Run[T]) -> GatewayError:
        """The error that ends the request: the last failure, with an honest Retry-After."""
        self.stats.exhausted += 1
        if run.out_of_time:
            error: GatewayError = UpstreamTimeoutError(
                f"The model `{self.name}` did not answer within {self.timeouts.total:g} s."
            )
            if run.last is not None:
                error.deployment = run.last[2].name
            error.attempts = run.tried
            return error
        if run.last is None:
            now = time.monotonic()
            waits = [deployment.breaker.remaining(now) for _, deployment, _ in run.skipped]
            return ServiceUnavailableError(
                f"Every deployment of `{self.name}` was asked by its upstream to wait;"
                " retry after the time in Retry-After.",
                code="deployments_cooling_down",
                retry_after=min(waits) if waits else None,
            )
        error, at, deployment = run.last
        if error.retry_after is not None:
            # the upstream's own wait, less the time since it said so
            error.retry_after = max(0.0, error.retry_after - (time.monotonic() - at))
        if run.tried > 1:
            error.message = f"All {run.tried} attempts failed; the last: {error.message}"
        error.deployment, error.attempts = deployment.name, run.tried
        return error
