"""``python -m bench.routing_overhead``: what the routing layer costs per request, in-process.

An in-memory provider (no network) streams 20 text batches; the same requests are read from it
directly and through a Router (one deployment as every plain entry has; two weighted deployments;
two with a total timeout, which arms a timer per batch). Rounds are interleaved so machine noise
hits every variant alike; the figure is the median over rounds of the mean time per request.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import AsyncGenerator, Callable
from typing import Any

from sluicegate.core.completion import Completion, collect
from sluicegate.core.events import Batch, Finish, Started, TextDelta, Usage
from sluicegate.core.request import ChatRequest
from sluicegate.model_config.policies import CooldownPolicy, Timeouts
from sluicegate.routing.attempt import Deployment
from sluicegate.routing.router import Router

BATCHES = 20


class InMemory:
    kind = "memory"
    owned_by = "bench"
    upstream_model = "m"

    def __init__(self, name: str) -> None:
        self.name = name
        self._batches: list[Batch] = [[TextDelta(f"w{i} ")] for i in range(BATCHES)]

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def stream(self, request: ChatRequest) -> AsyncGenerator[Batch, None]:
        yield [Started(upstream_model="m")]
        for batch in self._batches:
            yield batch
        yield [Finish("stop"), Usage(3, BATCHES)]

    async def complete(self, request: ChatRequest) -> Completion:
        return await collect(self.stream(request))

    async def count_tokens(self, request: ChatRequest) -> int | None:
        return None


def router(deployments: int, total: float | None = None) -> Router:
    members = [Deployment(f"m#{n}", InMemory(f"m#{n}"), 1.0, CooldownPolicy()) for n in range(deployments)]
    strategy = "ordered" if deployments == 1 else "weighted"
    return Router("m", members, strategy=strategy, timeouts=Timeouts(total=total))


async def read(provider: Any, request: ChatRequest) -> int:
    count = 0
    async for batch in provider.stream(request):
        count += len(batch)
    return count


async def measure(rounds: int, per_round: int) -> dict[str, float]:
    request = ChatRequest(model="m", messages=[], raw={}, stream=True)
    variants: dict[str, Callable[[], Any]] = {
        "direct": lambda: InMemory("m"),
        "router, 1 deployment": lambda: router(1),
        "router, 2 weighted": lambda: router(2),
        "router, 2 weighted + total timeout": lambda: router(2, total=600),
    }
    built = {name: make() for name, make in variants.items()}
    times: dict[str, list[float]] = {name: [] for name in built}
    for _ in range(rounds):
        for name, provider in built.items():
            started = time.perf_counter()
            for _ in range(per_round):
                await read(provider, request)
            times[name].append((time.perf_counter() - started) / per_round * 1e6)
    return {name: statistics.median(values) for name, values in times.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.routing_overhead", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--per-round", type=int, default=2000)
    args = parser.parse_args(argv)
    results = asyncio.run(measure(args.rounds, args.per_round))
    base = results["direct"]
    print(f"µs per {BATCHES}-batch stream (median of {args.rounds} rounds of {args.per_round}):")
    for name, value in results.items():
        extra = "" if name == "direct" else f"  (+{value - base:.1f} µs)"
        print(f"  {name:38s} {value:7.1f}{extra}")


if __name__ == "__main__":
    main()
