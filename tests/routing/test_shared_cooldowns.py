"""Cooldowns shared by replicas through the real Redis on 127.0.0.1:6379 (skipped only when it is
not running and CI is not set)."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as redis

from sluicegate.routing.health import CLOSED, OPEN
from sluicegate.routing.router import Router
from sluicegate.routing.shared import SharedCooldowns
from tests.routing.conftest import answer, openai, routers
from tests.support.server import free_port
from testsupport.fault_upstream import FaultUpstream

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except (redis.ConnectionError, OSError):
        if os.environ.get("CI") == "true":
            raise
        pytest.skip("Redis is not running on 127.0.0.1:6379")
    value = f"sg-test-{secrets.token_hex(4)}:"
    yield value
    keys = [key async for key in client.scan_iter(match=value + "*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


def model(a: FaultUpstream, b: FaultUpstream) -> dict[str, object]:
    return {
        "name": "m",
        "routing": "ordered",
        "cooldown": {"failures": 1, "seconds": 30},
        "deployments": [openai(a.base_url), openai(b.base_url)],
    }


async def until_open(router: Router) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5.0
    while loop.time() < deadline:
        if router.deployments[0].breaker.state == OPEN:
            return True
        await asyncio.sleep(0.01)
    return False


async def test_a_trip_on_one_replica_takes_the_deployment_out_on_the_others(
    a: FaultUpstream, b: FaultUpstream, prefix: str
) -> None:
    a.reset("status:code=500")
    one, two = SharedCooldowns(REDIS_URL, prefix), SharedCooldowns(REDIS_URL, prefix)
    async with routers(model(a, b), shared=one) as first, routers(model(a, b), shared=two) as second:
        await asyncio.wait_for(two.subscribed.wait(), 5)
        assert (await answer(first["m"]))[0].attempts == 2  # m#1 fails once: out for 30 s
        assert await until_open(second["m"])
        started, _ = await answer(second["m"])
        assert (started.deployment, started.attempts) == ("m#2", 1)  # never tried m#1
        assert second["m"].deployments[0].stats.cooldowns == 1
        # a replica that starts later reads the cooldowns in force
        async with routers(model(a, b), shared=SharedCooldowns(REDIS_URL, prefix)) as third:
            assert third["m"].deployments[0].breaker.state == OPEN
            remaining = third["m"].deployments[0].breaker.remaining(asyncio.get_running_loop().time())
            assert 25 < remaining <= 30
    assert len(a.attempts) == 1


async def test_without_redis_the_cooldowns_stay_per_replica(
    a: FaultUpstream, b: FaultUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    a.reset("status:code=500")
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    with caplog.at_level(logging.WARNING, logger="sluicegate.routing"):
        async with routers(model(a, b), shared=SharedCooldowns(nowhere)) as built:
            assert (await answer(built["m"]))[0].attempts == 2
            assert built["m"].deployments[0].breaker.state == OPEN
            assert (await answer(built["m"]))[0].attempts == 1
            await asyncio.sleep(0.1)
    assert any("unreachable" in r.getMessage() for r in caplog.records)


async def test_a_single_deployment_is_not_registered_for_sharing(a: FaultUpstream, prefix: str) -> None:
    shared = SharedCooldowns(REDIS_URL, prefix)
    async with routers({"name": "m", **openai(a.base_url)}, shared=shared) as built:
        assert built["m"].shared is None and built["m"].deployments[0].breaker.state == CLOSED
