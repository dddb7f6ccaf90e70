"""A client that leaves before its answer: the exchange is settled for what was really done
(an upstream's whole answer is read on, since the upstream bills it all the same)."""

from __future__ import annotations

import asyncio

from starlette.responses import Response

from sluicegate.api.serving.observe import observe_completion
from sluicegate.core.completion import Completion
from sluicegate.core.exchange import Exchange
from sluicegate.errors import GatewayError
from sluicegate.gateway import Gateway
from sluicegate.http.waiting import cancel


def client_left(exchange: Exchange, gateway: Gateway) -> Response:
    exchange.client_gone = True
    exchange.status = 499
    gateway.settle(exchange)
    return Response(status_code=499)  # nobody is waiting; the work was cancelled


def read_on_for_the_bill(work: asyncio.Future[Completion], exchange: Exchange, gateway: Gateway) -> Response:
    """The client left a whole answer of an upstream, which bills it all the same: the answer
    is read to its end (bounded by the model's timeouts, or ended at the shutdown deadline) in
    the background, and the exchange is settled with its usage, still as `client_gone`."""
    exchange.client_gone = True
    exchange.status = 499
    exchange.total_s = exchange.elapsed()
    gateway.run_in_background(_bill_when_answered(work, exchange, gateway))
    return Response(status_code=499)


async def _bill_when_answered(work: asyncio.Future[Completion], exchange: Exchange, gateway: Gateway) -> None:
    stop = gateway.shutdown.watch()
    try:
        await asyncio.wait((work, stop), return_when=asyncio.FIRST_COMPLETED)
    finally:
        gateway.shutdown.unwatch(stop)
        if not work.done():
            await cancel(work)
        if work.done() and not work.cancelled():
            failure = work.exception()
            if failure is None:
                observe_completion(exchange, work.result())
            elif isinstance(failure, GatewayError) and failure.deployment:
                exchange.deployment, exchange.attempts = failure.deployment, failure.attempts
        gateway.settle(exchange)
