"""The Router over real OpenAI-compatible upstreams (fault servers on 127.0.0.1): retries,
fail-over in each strategy, fallbacks, cooldowns and probes, timeouts, and its counters."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

import pytest

from sluicegate.errors import (
    InvalidRequestError,
    RateLimitError,
    ServiceUnavailableError,
    UpstreamError,
    UpstreamTimeoutError,
)
from sluicegate.routing.health import CLOSED, HALF_OPEN, OPEN
from tests.routing.conftest import answer, chat, openai, routers
from testsupport.fault_upstream import Fault, FaultUpstream

FAST_RETRIES = {"count": 2, "backoff_base_s": 0.01, "backoff_cap_s": 0.02}


async def test_a_single_entry_names_itself_as_the_deployment(a: FaultUpstream) -> None:
    async with routers({"name": "m", **openai(a.base_url)}) as built:
        started, text = await answer(built["m"])
    assert (started.deployment, started.attempts, started.upstream_model) == ("m", 1, "m")
    assert text == Fault().text()
    assert built["m"].deployments[0].stats.attempts == 1


async def test_ordered_fails_over_from_a_dead_deployment(a: FaultUpstream, closed_url: str) -> None:
    model = {"name": "m", "routing": "ordered", "deployments": [openai(closed_url), openai(a.base_url)]}
    async with routers(model) as built:
        router = built["m"]
        started, text = await answer(router)
    assert (started.deployment, started.attempts) == ("m#2", 2)
    assert text == Fault().text()
    dead, live = router.deployments
    assert (dead.stats.attempts, dead.stats.failures, live.stats.attempts) == (1, 1, 1)
    assert router.stats.failovers == 1 and router.stats.exhausted == 0
    assert dead.stats.in_flight == live.stats.in_flight == 0


async def test_weighted_shares_traffic_by_weight(a: FaultUpstream, b: FaultUpstream) -> None:
    model = {
        "name": "m",
        "deployments": [openai(a.base_url, name="heavy", weight=3), openai(b.base_url, name="light")],
    }
    async with routers(model) as built:
        seen = Counter()
        for _ in range(400):
            completion = await built["m"].complete(chat(stream=False))
            assert completion.origin is not None
            seen[completion.origin.deployment] += 1
    # expected 300 / 100; the bounds are 7 standard deviations wide
    assert 240 <= seen["heavy"] <= 360 and seen["heavy"] + seen["light"] == 400
    assert len(a.attempts) == seen["heavy"] and len(b.attempts) == seen["light"]


async def test_least_busy_sends_to_the_deployment_with_fewer_in_flight(
    a: FaultUpstream, b: FaultUpstream
) -> None:
    a.reset("stall:after=1,seconds=30")
    b.reset("stall:after=1,seconds=30")
    model = {"name": "m", "routing": "least-busy", "deployments": [openai(a.base_url), openai(b.base_url)]}
    async with routers(model) as built:
        router = built["m"]
        streams = [router.stream(chat()) for _ in range(4)]
        firsts = [await anext(stream) for stream in streams]
        names = [first[0].deployment for first in firsts]  # type: ignore[union-attr]
        assert Counter(names) == {"m#1": 2, "m#2": 2}
        assert [d.stats.in_flight for d in router.deployments] == [2, 2]
        for stream in streams:
            await stream.aclose()
        assert [d.stats.in_flight for d in router.deployments] == [0, 0]
    assert a.wait_for(lambda u: all(t.cancelled_at for t in u.attempts))
    assert b.wait_for(lambda u: all(t.cancelled_at for t in u.attempts))


async def test_retries_with_backoff_then_answers(a: FaultUpstream) -> None:
    a.enqueue("status:code=503", "status:code=500")
    async with routers({"name": "m", "retries": FAST_RETRIES, **openai(a.base_url)}) as built:
        started, text = await answer(built["m"])
    assert (started.deployment, started.attempts) == ("m", 3)
    assert len(a.attempts) == 3 and text == Fault().text()
    stats = built["m"].deployments[0].stats
    assert (stats.attempts, stats.retries, stats.failures) == (3, 2, 2)


async def test_retry_after_within_the_cap_is_waited_for(a: FaultUpstream) -> None:
    a.enqueue("status:code=429,retry_after=1")
    async with routers({"name": "m", "retries": FAST_RETRIES, **openai(a.base_url)}) as built:
        started, _ = await answer(built["m"])
    assert started.attempts == 2
    first, second = a.attempts
    assert second.started_at - first.started_at >= 0.95  # the upstream's wait, not the 10 ms backoff


async def test_retry_after_beyond_the_cap_is_passed_on_not_waited_for(a: FaultUpstream) -> None:
    a.enqueue("status:code=429,retry_after=30")
    retries = {**FAST_RETRIES, "retry_after_cap_s": 5}
    async with routers({"name": "m", "retries": retries, **openai(a.base_url)}) as built:
        with pytest.raises(RateLimitError) as info:
            await answer(built["m"])
    assert len(a.attempts) == 1
    assert info.value.retry_after is not None and 29 <= info.value.retry_after <= 30
    assert info.value.headers()["retry-after"] == "30"
    assert (info.value.deployment, info.value.attempts) == ("m", 1)


async def test_a_long_retry_after_moves_on_and_holds_the_deployment_out(
    a: FaultUpstream, b: FaultUpstream
) -> None:
    a.enqueue("status:code=429,retry_after=60")
    model = {"name": "m", "routing": "ordered", "deployments": [openai(a.base_url), openai(b.base_url)]}
    async with routers(model) as built:
        router = built["m"]
        assert (await answer(router))[0].deployment == "m#2"
        assert router.deployments[0].breaker.state == OPEN
        assert (await answer(router))[0].attempts == 1  # straight to m#2 while m#1 waits
    assert len(a.attempts) == 1 and len(b.attempts) == 2


async def test_a_refused_key_is_not_retried_but_failed_over_and_logged(
    a: FaultUpstream, b: FaultUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    a.reset("status:code=401")
    model = {
        "name": "gpt",
        "routing": "ordered",
        "retries": FAST_RETRIES,
        "deployments": [openai(a.base_url, name="azure"), openai(b.base_url)],
    }
    with caplog.at_level(logging.ERROR, logger="sluicegate"):
        async with routers(model) as built:
            started, _ = await answer(built["gpt"])
    assert (started.deployment, started.attempts) == ("gpt#2", 2)
    assert len(a.attempts) == 1  # retrying a refused key only repeats the refusal
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("model entry gpt, deployment azure" in m and "credentials" in m for m in errors), errors


async def test_the_clients_own_mistake_is_not_retried_anywhere(a: FaultUpstream, b: FaultUpstream) -> None:
    a.reset("status:code=400")
    b.reset("status:code=400")
    model = {"name": "m", "retries": FAST_RETRIES, "deployments": [openai(a.base_url), openai(b.base_url)]}
    async with routers(model) as built:
        with pytest.raises(InvalidRequestError):
            await answer(built["m"])
    assert len(a.attempts) + len(b.attempts) == 1


async def test_cooldown_takes_a_failing_deployment_out_then_probes_it_back(
    a: FaultUpstream, b: FaultUpstream
) -> None:
    a.refuse()
    model = {
        "name": "m",
        "routing": "ordered",
        "cooldown": {"failures": 2, "seconds": 0.3},
        "deployments": [openai(a.base_url), openai(b.base_url)],
    }
    async with routers(model) as built:
        router = built["m"]
        first, second = router.deployments
        assert [(await answer(router))[0].attempts for _ in range(2)] == [2, 2]
        assert first.breaker.state == OPEN and first.stats.cooldowns == 1
        assert (await answer(router))[0].attempts == 1  # m#1 is skipped, not tried
        assert first.stats.attempts == 2
        a.accept()
        await asyncio.sleep(0.35)
        assert first.breaker.state == HALF_OPEN
        started, _ = await answer(router)  # the probe
        assert (started.deployment, started.attempts) == ("m#1", 1)
        assert first.breaker.state == CLOSED
        assert second.stats.failures == 0


async def test_a_failed_probe_takes_the_deployment_out_again(a: FaultUpstream, b: FaultUpstream) -> None:
    a.reset("status:code=500")
    model = {
        "name": "m",
        "routing": "ordered",
        "cooldown": {"failures": 1, "seconds": 0.2},
        "deployments": [openai(a.base_url), openai(b.base_url)],
    }
    async with routers(model) as built:
        router = built["m"]
        await answer(router)
        assert router.deployments[0].breaker.state == OPEN
        await asyncio.sleep(0.25)
        assert (await answer(router))[0].attempts == 2  # probed, failed, and on to m#2
        assert router.deployments[0].breaker.state == OPEN
        assert router.deployments[0].stats.cooldowns == 2
    assert len(a.attempts) == 2


async def test_mid_stream_failures_count_towards_the_cooldown(a: FaultUpstream, b: FaultUpstream) -> None:
    a.reset("reset:after=1")
    model = {
        "name": "m",
        "routing": "ordered",
        "cooldown": {"failures": 2, "seconds": 30},
        "deployments": [openai(a.base_url), openai(b.base_url)],
    }
    async with routers(model) as built:
        router = built["m"]
        for _ in range(2):
            with pytest.raises(UpstreamError):
                await answer(router)  # committed on m#1, then cut: not retried
        assert router.deployments[0].breaker.state == OPEN
        assert (await answer(router))[0].deployment == "m#2"


async def test_deployments_taken_out_are_the_last_resort(a: FaultUpstream, b: FaultUpstream) -> None:
    a.reset("status:code=500")
    b.reset("status:code=500")
    model = {
        "name": "m",
        "routing": "ordered",
        "cooldown": {"failures": 1, "seconds": 20},
        "deployments": [openai(a.base_url), openai(b.base_url)],
    }
    async with routers(model) as built:
        router = built["m"]
        with pytest.raises(UpstreamError) as failed:
            await answer(router)
        assert failed.value.attempts == 2 and "All 2 attempts failed" in failed.value.message
        assert [d.breaker.state for d in router.deployments] == [OPEN, OPEN]
        b.reset()  # m#2 recovers while both are out
        started, _ = await answer(router)  # m#1 comes back first: tried first, once; then m#2
        assert (started.deployment, started.attempts) == ("m#2", 2)
        assert [d.breaker.state for d in router.deployments] == [OPEN, CLOSED]
        assert len(a.attempts) == 2 and len(b.attempts) == 1
        started, _ = await answer(router)  # m#2 is back in: m#1 stays out
        assert (started.deployment, started.attempts) == ("m#2", 1)


async def test_when_every_upstream_asked_to_wait_the_answer_is_a_503_with_that_wait(
    a: FaultUpstream, b: FaultUpstream
) -> None:
    a.reset("status:code=429,retry_after=40")
    b.reset("status:code=429,retry_after=20")
    model = {"name": "m", "routing": "ordered", "deployments": [openai(a.base_url), openai(b.base_url)]}
    async with routers(model) as built:
        with pytest.raises(RateLimitError) as limited:
            await answer(built["m"])
        assert limited.value.headers()["retry-after"] == "20"  # the last upstream's own word
        with pytest.raises(ServiceUnavailableError) as waiting:
            await answer(built["m"])
    assert waiting.value.code == "deployments_cooling_down"
    assert waiting.value.retry_after is not None and 19 <= waiting.value.retry_after <= 20
    assert len(a.attempts) + len(b.attempts) == 2


async def test_a_single_deployment_without_fallbacks_is_never_taken_out(a: FaultUpstream) -> None:
    a.reset("status:code=500")
    async with routers({"name": "m", "cooldown": {"failures": 1}, **openai(a.base_url)}) as built:
        for _ in range(3):
            with pytest.raises(UpstreamError):
                await answer(built["m"])
        assert built["m"].deployments[0].breaker.state == CLOSED
    assert len(a.attempts) == 3


async def test_fallback_to_another_model_after_every_deployment_failed(
    a: FaultUpstream, b: FaultUpstream, closed_url: str
) -> None:
    primary = {"name": "big", "fallbacks": ["small-alias"], **openai(closed_url)}
    fallback = {"name": "small", "aliases": ["small-alias"], **openai(b.base_url, upstream_model="tiny")}
    async with routers(primary, fallback) as built:
        started, text = await answer(built["big"])
        completion = await built["big"].complete(chat("big", stream=False))
    assert (started.deployment, started.attempts, started.upstream_model) == ("small", 2, "tiny")
    assert text == Fault().text()
    assert completion.origin is not None and completion.origin.deployment == "small"
    assert built["big"].stats.fallbacks == 2
    assert [t.model for t in b.attempts] == ["tiny", "tiny"]


async def test_a_fallback_cut_mid_answer_counts_against_its_own_deployment(
    b: FaultUpstream, closed_url: str
) -> None:
    b.reset("reset:after=1")
    primary = {"name": "big", "fallbacks": ["small"], **openai(closed_url)}
    fallback = {"name": "small", **openai(b.base_url)}
    async with routers(primary, fallback) as built:
        with pytest.raises(UpstreamError, match="closed the stream early"):
            await answer(built["big"])
    assert built["small"].deployments[0].stats.failures == 1
    assert built["big"].deployments[0].stats.failures == 1  # its own refused connection only


async def test_first_byte_timeout_fails_over_and_cancels_the_slow_attempt(
    a: FaultUpstream, b: FaultUpstream
) -> None:
    a.reset("delay:seconds=30")
    model = {
        "name": "m",
        "routing": "ordered",
        "timeouts": {"first_byte": 0.3},
        "deployments": [openai(a.base_url), openai(b.base_url)],
    }
    async with routers(model) as built:
        started, _ = await answer(built["m"])
    assert (started.deployment, started.attempts) == ("m#2", 2)
    assert a.wait_for(lambda u: u.attempts[0].cancelled_at is not None)


async def test_idle_timeout_mid_stream(a: FaultUpstream) -> None:
    a.reset("stall:after=2,seconds=30")
    async with routers({"name": "m", "timeouts": {"idle": 0.3}, **openai(a.base_url)}) as built:
        texts: list[str] = []
        with pytest.raises(UpstreamTimeoutError, match="went silent mid-stream"):
            async for batch in built["m"].stream(chat()):
                texts += [getattr(e, "text", "") for e in batch]
    assert "".join(texts) == Fault.parse("stall:after=2").text() == "w0 w1 "


async def test_total_timeout_bounds_a_stream_that_keeps_talking(a: FaultUpstream) -> None:
    a.reset("ok:chunks=50,gap_s=0.05")
    async with routers({"name": "m", "timeouts": {"total": 0.5}, **openai(a.base_url)}) as built:
        with pytest.raises(UpstreamTimeoutError, match=r"did not finish within 0\.5 s"):
            await answer(built["m"])
    assert a.wait_for(lambda u: u.attempts[0].cancelled_at is not None)


async def test_total_timeout_bounds_the_retries_too(a: FaultUpstream) -> None:
    a.reset("status:code=503,retry_after=1")
    model = {"name": "m", "timeouts": {"total": 1.5}, "retries": {"count": 5}, **openai(a.base_url)}
    async with routers(model) as built:
        with pytest.raises(ServiceUnavailableError) as info:
            await answer(built["m"])
    # tried at 0 s and after the 1 s Retry-After; a third wait would end past the 1.5 s total
    assert len(a.attempts) == 2 and info.value.attempts == 2
    assert info.value.headers()["retry-after"] == "1"


async def test_leaving_during_a_backoff_stops_there(a: FaultUpstream) -> None:
    a.reset("status:code=503,retry_after=5")
    model = {"name": "m", "retries": {"count": 3, "retry_after_cap_s": 10}, **openai(a.base_url)}
    async with routers(model) as built:
        task = asyncio.ensure_future(answer(built["m"]))
        assert await asyncio.to_thread(a.wait_for, lambda u: len(u.attempts) == 1)
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert built["m"].deployments[0].stats.in_flight == 0
        await asyncio.sleep(0.2)
    assert len(a.attempts) == 1
