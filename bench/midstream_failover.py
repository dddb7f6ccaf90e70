"""What mid-stream fail-over costs, in-process over the fault upstream: a 2,000-chunk stream
through a model with the option off and on (the relay's own cost per chunk), and an answer whose
upstream resets after two chunks and is continued by the next deployment (the seam's cost, less
the mock's 0.2 s before its reset).

    python -m bench.midstream_failover
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from sluicegate.core.request import ChatRequest
from sluicegate.routing.router import Router
from sluicegate.settings import Settings
from sluicegate.wiring.build import build_routers
from testsupport.fault_upstream import Fault, FaultUpstream

ROUNDS = 20
RESET_DELAY_S = 0.2  # the fault upstream waits this long before it resets


def entry(name: str, url: str, mid_stream: bool) -> dict[str, Any]:
    deployment = {"provider": "openai", "base_url": url, "api_key": "k", "continue_final_message": True}
    return {
        "name": name,
        "routing": "ordered",
        "cooldown": False,
        "failover": {"mid_stream": mid_stream},
        "deployments": [{"name": f"{name}-a", **deployment}, {"name": f"{name}-b", **deployment}],
    }


def chat(model: str) -> ChatRequest:
    raw: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": True}
    return ChatRequest(model=model, messages=raw["messages"], raw=raw, stream=True)


async def per_stream_ms(router: Router) -> float:
    start = time.perf_counter()
    for _ in range(ROUNDS):
        async for _batch in router.stream(chat(router.name)):
            pass
    return (time.perf_counter() - start) / ROUNDS * 1000


async def main() -> None:
    logging.disable(logging.WARNING)  # one line per seam otherwise
    upstream = FaultUpstream().start()
    models = [entry("off", upstream.base_url, False), entry("on", upstream.base_url, True)]
    settings = Settings.model_validate({"models": models})
    routers = build_routers(settings.models)
    for router in routers.values():
        await router.start()
    try:
        upstream.reset(Fault(chunks=2000))
        for name in ("off", "on", "off", "on"):
            print(f"option {name:3}: {await per_stream_ms(routers[name]):6.1f} ms per 2,000-chunk stream")
        upstream.reset("ok")
        start = time.perf_counter()
        for _ in range(ROUNDS):
            upstream.enqueue("reset:after=2")
            async for _batch in routers["on"].stream(chat("on")):
                pass
        seam_ms = ((time.perf_counter() - start) / ROUNDS - RESET_DELAY_S) * 1000
        print(f"an answer continued after a reset: {seam_ms:.1f} ms beyond the upstream's own {RESET_DELAY_S} s")
    finally:
        for router in routers.values():
            await router.close()
        upstream.stop()


if __name__ == "__main__":
    asyncio.run(main())
