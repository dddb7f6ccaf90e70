"""`GET /metrics` in Prometheus' text format, fed by an exchange hook off the request path.

With several workers, each worker is its own process: the server points the library's
multiprocess mode (`PROMETHEUS_MULTIPROC_DIR`) at a fresh directory before it forks, every
worker writes its values to files there, and a scrape answered by any worker adds them up
(gauges of a dead worker are dropped by `mark_process_dead`). With one worker the values
live in memory. The choice is made when `prometheus_client` is first imported, so nothing
here imports it at module level.

Labels stay bounded: `model` is the configured entry that served the request (never the
name a client typed), `deployment` the routing layer's deployment name.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from sluicegate.core.exchange import Exchange
from sluicegate.observability.routing_metrics import RoutingMetrics

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from sluicegate.routing.router import Router

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
TTFT_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
TOTAL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


def multiprocess() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


class Metrics:
    """The gateway's metrics. An ExchangeHook that sees every exchange (see Gateway.observers);
    `follow` points it at the routers, whose retries, fail-overs, fallbacks and cooldowns it
    reports (`routing_metrics`), and whose local models report their queue length."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

        disable_created_metrics()  # type: ignore[no-untyped-call] # no `_created` series beside every counter
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        by = ("model", "deployment")
        self.requests = Counter(
            "sluicegate_requests",
            "Requests answered, by door, model, deployment, HTTP status and error type.",
            ("door", "model", "deployment", "status", "error_type"),
            registry=r,
        )
        self.ttft = Histogram(
            "sluicegate_time_to_first_token_seconds",
            "From the request's arrival to its first content (text, reasoning or tool call).",
            by,
            buckets=TTFT_BUCKETS,
            registry=r,
        )
        self.duration = Histogram(
            "sluicegate_request_duration_seconds",
            "From the request's arrival to its last byte.",
            by,
            buckets=TOTAL_BUCKETS,
            registry=r,
        )
        self.input_tokens = Counter(
            "sluicegate_input_tokens", "Prompt tokens, as the provider counted them.", by, registry=r
        )
        self.output_tokens = Counter(
            "sluicegate_output_tokens", "Completion tokens, as the provider counted them.", by, registry=r
        )
        self.in_flight = Gauge(
            "sluicegate_requests_in_flight",
            "Requests admitted and not yet finished.",
            ("model",),
            registry=r,
            multiprocess_mode="livesum",
        )
        self.routing = RoutingMetrics(r)
        # The labelled children, looked up once per label set (labels() costs a lock and a dict).
        self._requests: dict[tuple[str, ...], Any] = {}
        self._series: dict[tuple[str, str], tuple[Any, ...]] = {}
        self._in_flight: dict[str, Any] = {}
        self.queue = Gauge(
            "sluicegate_local_queue_length",
            "Requests waiting for the embedded model (beyond the one generating).",
            ("model", "deployment"),
            registry=r,
            multiprocess_mode="livesum",
        )

    # ExchangeHook ---------------------------------------------------------------------------

    async def admit(self, exchange: Exchange) -> None:
        gauge = self._in_flight.get(exchange.served_by)
        if gauge is None:
            gauge = self._in_flight[exchange.served_by] = self.in_flight.labels(exchange.served_by)
        gauge.inc()
        exchange.state["metrics.in_flight"] = gauge

    async def settle(self, exchange: Exchange) -> None:
        gauge = exchange.state.pop("metrics.in_flight", None)
        if gauge is not None:
            gauge.dec()
        model, deployment = exchange.served_by, exchange.deployment or exchange.served_by
        error_type = exchange.error_type or ("client_disconnected" if exchange.client_gone else "")
        key = (exchange.door, model, deployment, str(exchange.status), error_type)
        counter = self._requests.get(key)
        if counter is None:
            counter = self._requests[key] = self.requests.labels(*key)
        counter.inc()
        series = self._series.get((model, deployment))
        if series is None:
            series = self._series[(model, deployment)] = tuple(
                metric.labels(model, deployment)
                for metric in (self.ttft, self.duration, self.input_tokens, self.output_tokens)
            )
        ttft, duration, input_tokens, output_tokens = series
        if exchange.ttft_s is not None:
            ttft.observe(exchange.ttft_s)
        if exchange.total_s is not None:
            duration.observe(exchange.total_s)
        if exchange.usage is not None:
            input_tokens.inc(exchange.usage.prompt_tokens)
            output_tokens.inc(exchange.usage.completion_tokens)
        self.routing.sync()

    # what other parts report ---------------------------------------------------------------

    def follow(self, routers: Iterable[Router]) -> None:
        """Report the routers' counters, and the queue length of their local deployments."""
        routers = list(routers)
        self.routing.follow(routers)
        for router in routers:
            for deployment in router.deployments:
                if hasattr(deployment.provider, "on_queue"):
                    deployment.provider.on_queue = functools.partial(
                        self.queue_length, router.name, deployment.name
                    )
                    self.queue_length(router.name, deployment.name, 0)

    def queue_length(self, model: str, deployment: str, waiting: int) -> None:
        self.queue.labels(model, deployment).set(waiting)

    # exposition ------------------------------------------------------------------------------

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        self.routing.sync()
        return generate_latest(self._scraped_registry()), CONTENT_TYPE_LATEST

    def _scraped_registry(self) -> CollectorRegistry:
        if not multiprocess():
            return self.registry
        from prometheus_client import CollectorRegistry
        from prometheus_client.multiprocess import MultiProcessCollector

        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return registry


async def metrics_endpoint(request: Request) -> Response:
    metrics: Metrics | None = getattr(request.app.state.gateway, "metrics", None)
    if metrics is None:
        return Response("metrics are disabled (server.metrics: false)\n", status_code=404)
    body, content_type = metrics.render()
    return Response(body, media_type=content_type)


def mark_process_dead(pid: int) -> None:
    """Drop a dead worker's live gauges (in flight, queue length); its counters stay counted."""
    if multiprocess():
        from prometheus_client import multiprocess as mp

        mp.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def fresh_multiprocess_dir(path: str) -> None:
    """Empty a multiprocess directory of the previous run's value files."""
    for name in os.listdir(path):
        if name.endswith(".db"):
            os.remove(os.path.join(path, name))
