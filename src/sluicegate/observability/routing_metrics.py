"""The routing layer's counters as Prometheus counters.

The routers count for themselves, in plain integers per process (`ModelStats` on each Router,
`DeploymentStats` on each Deployment), so routing pays nothing for metrics. Each worker adds
what its counters gained since it last looked (after each request, and before a scrape it
answers), so with several workers the multiprocess sum is the gateway's total.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from sluicegate.routing.router import Router

MODEL_FIELDS = (
    ("failovers", "sluicegate_failovers", "Moves to another deployment of the model after a failure."),
    ("continued", "sluicegate_midstream_failovers", "Answers continued by another deployment mid-stream."),
    ("fallbacks", "sluicegate_fallbacks", "Moves to a fallback model after every deployment failed."),
    ("exhausted", "sluicegate_exhausted", "Requests that failed on every deployment and fallback."),
)
DEPLOYMENT_FIELDS = (
    ("attempts", "sluicegate_upstream_attempts", "Upstream attempts (first tries, retries, fail-overs)."),
    ("failures", "sluicegate_upstream_failures", "Upstream attempts that failed."),
    ("retries", "sluicegate_retries", "Attempts that repeated a failed attempt on the same deployment."),
    ("cooldowns", "sluicegate_cooldowns", "Times a deployment was taken out of rotation (a cooldown)."),
)


class RoutingMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        from prometheus_client import Counter

        self._model = [(field, Counter(name, text, ("model",), registry=registry)) for field, name, text in MODEL_FIELDS]
        self._deployment = [
            (field, Counter(name, text, ("model", "deployment"), registry=registry))
            for field, name, text in DEPLOYMENT_FIELDS
        ]
        self._routers: list[Router] = []
        self._seen: dict[tuple[int, str], int] = {}  # (id of a stats object, field) -> value counted

    def follow(self, routers: Iterable[Router]) -> None:
        self._routers = list(routers)

    def sync(self) -> None:
        for router in self._routers:
            self._add(router.stats, self._model, (router.name,))
            for deployment in router.deployments:
                self._add(deployment.stats, self._deployment, (router.name, deployment.name))

    def _add(self, stats: object, fields: Sequence[tuple[str, Any]], labels: tuple[str, ...]) -> None:
        for field, counter in fields:
            now = int(getattr(stats, field))
            key = (id(stats), field)
            gained = now - self._seen.get(key, 0)
            if gained > 0:
                counter.labels(*labels).inc(gained)
                self._seen[key] = now
