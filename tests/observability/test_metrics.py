"""`GET /metrics` after known traffic: the counts are exact, in one process and across workers."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.cli.test_serve_workers import children, wait_for
from tests.support.inprocess import in_process, settings_for
from tests.support.openai_upstream import OpenAIUpstream, Reply
from tests.support.server import LOCAL_MODEL, Gateway, start_gateway
from tests.support.streams import LONG_JSON, StreamClient

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of every sample of `name` whose labels include `labels`."""
    return sum(v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= set(ls))


def chat(model: str, stream: bool, content: str = "one two three") -> dict[str, object]:
    return {"model": model, "messages": [{"role": "user", "content": content}], "stream": stream}


async def test_counts_after_known_traffic_are_exact(tmp_path: Path, clean_upstream: OpenAIUpstream) -> None:
    settings = settings_for(
        tmp_path, [{"name": "up", "provider": "openai", "base_url": clean_upstream.base_url}]
    )
    async with in_process(settings) as gw:
        url = "/v1/chat/completions"
        for _ in range(3):
            assert (await gw.client.post(url, json=chat("up", True), headers=gw.auth())).status_code == 200
        assert (await gw.client.post(url, json=chat("up", False), headers=gw.auth())).status_code == 200
        assert (await gw.client.post(url, json=chat("nope", True), headers=gw.auth())).status_code == 404
        bad_key = {"Authorization": "Bearer sk-sg-wrong"}
        assert (await gw.client.post(url, json=chat("up", True), headers=bad_key)).status_code == 401
        clean_upstream.enqueue(Reply(status=500, body=b'{"error": {"message": "boom"}}'))
        assert (await gw.client.post(url, json=chat("up", False), headers=gw.auth())).status_code == 502
        await gw.gateway.wait_settled()

        response = await gw.client.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        samples = parse(response.text)

    requests = "sluicegate_requests_total"
    assert value(samples, requests) == 7
    assert value(samples, requests, model="up", deployment="up", status="200", error_type="") == 4
    assert value(samples, requests, status="404", error_type="invalid_request_error", model="") == 1
    assert value(samples, requests, status="401", error_type="invalid_request_error", model="") == 1
    assert value(samples, requests, model="up", status="502", error_type="upstream_error") == 1
    assert value(samples, requests, door="chat_completions") == 7
    # Echo answers: 5 prompt tokens and one completion token per word, per answer.
    assert value(samples, "sluicegate_input_tokens_total", model="up") == 4 * 5
    assert value(samples, "sluicegate_output_tokens_total", model="up") == 4 * 3
    assert value(samples, "sluicegate_time_to_first_token_seconds_count", model="up") == 4
    assert value(samples, "sluicegate_request_duration_seconds_count", model="up") == 5
    assert value(samples, "sluicegate_requests_in_flight", model="up") == 0
    assert value(samples, "sluicegate_retries_total") == 0  # no routing events


async def test_fail_over_retries_and_cooldowns_are_counted(
    tmp_path: Path, clean_upstream: OpenAIUpstream
) -> None:
    deployments = [
        {"name": "first", "provider": "openai", "base_url": clean_upstream.base_url},
        {"name": "second", "provider": "openai", "base_url": clean_upstream.base_url},
    ]
    entry = {
        "name": "up",
        "routing": "ordered",
        "retries": 1,
        "cooldown": {"failures": 2, "seconds": 60},
        "deployments": deployments,
    }
    settings = settings_for(tmp_path, [entry])
    async with in_process(settings) as gw:
        # `first` fails twice (a retry, then its cooldown), `second` answers
        boom = Reply(status=500, body=b'{"error": {"message": "boom"}}')
        clean_upstream.enqueue(boom, boom)
        response = await gw.client.post("/v1/chat/completions", json=chat("up", True), headers=gw.auth())
        assert response.status_code == 200
        assert response.headers["x-sluicegate-deployment"] == "second"
        assert response.headers["x-sluicegate-attempts"] == "3"
        await gw.gateway.wait_settled()
        samples = parse((await gw.client.get("/metrics")).text)

    assert value(samples, "sluicegate_requests_total", model="up", deployment="second", status="200") == 1
    assert value(samples, "sluicegate_upstream_attempts_total", model="up", deployment="first") == 2
    assert value(samples, "sluicegate_upstream_attempts_total", model="up", deployment="second") == 1
    assert value(samples, "sluicegate_upstream_failures_total", model="up", deployment="first") == 2
    assert value(samples, "sluicegate_retries_total", model="up", deployment="first") == 1
    assert value(samples, "sluicegate_cooldowns_total", model="up", deployment="first") == 1
    assert value(samples, "sluicegate_failovers_total", model="up") == 1
    assert value(samples, "sluicegate_fallbacks_total", model="up") == 0


async def test_metrics_can_be_turned_off(tmp_path: Path, clean_upstream: OpenAIUpstream) -> None:
    settings = settings_for(
        tmp_path, [{"name": "up", "provider": "openai", "base_url": clean_upstream.base_url}], metrics=False
    )
    async with in_process(settings) as gw:
        assert (await gw.client.get("/metrics")).status_code == 404


def scrape_until(gateway: Gateway, name: str, expected: float, **labels: str) -> Samples:
    """Scrape until the settled count reaches `expected` (settling runs after the last byte)."""
    deadline = time.monotonic() + 30
    samples: Samples = {}
    while time.monotonic() < deadline:
        samples = parse(httpx.get(gateway.base_url + "/metrics", timeout=10).text)
        if value(samples, name, **labels) >= expected:
            break
        time.sleep(0.05)
    return samples


def test_several_workers_add_up(tmp_path: Path, clean_upstream: OpenAIUpstream) -> None:
    config = {
        "server": {"workers": 2},
        "models": [{"name": "up", "provider": "openai", "base_url": clean_upstream.base_url}],
    }
    gateway = start_gateway(tmp_path, config)
    try:
        headers = {"Authorization": f"Bearer {gateway.api_key}"}
        for i in range(12):  # new connections: the kernel spreads them over the workers
            with httpx.Client(timeout=30) as client:
                response = client.post(
                    gateway.v1 + "/chat/completions", json=chat("up", i % 2 == 0), headers=headers
                )
                assert response.status_code == 200
        samples = scrape_until(gateway, "sluicegate_requests_total", 12)
        assert value(samples, "sluicegate_requests_total", model="up", status="200") == 12
        assert value(samples, "sluicegate_output_tokens_total", model="up") == 12 * 3
        assert value(samples, "sluicegate_requests_in_flight") == 0
        # Every scrape, whichever worker answers it, sees the same totals.
        for _ in range(6):
            with httpx.Client(timeout=10) as client:
                again = parse(client.get(gateway.base_url + "/metrics").text)
            assert value(again, "sluicegate_requests_total", model="up", status="200") == 12

        # A worker that stops (and is replaced) takes nothing with it: its counts stay counted.
        worker = min(children(gateway.process.pid))
        os.kill(worker, signal.SIGTERM)
        assert wait_for(
            lambda: worker not in children(gateway.process.pid) and len(children(gateway.process.pid)) == 2
        )
        with httpx.Client(timeout=30) as client:
            assert (
                client.post(
                    gateway.v1 + "/chat/completions", json=chat("up", True), headers=headers
                ).status_code
                == 200
            )
        samples = scrape_until(gateway, "sluicegate_requests_total", 13)
        assert value(samples, "sluicegate_requests_total", model="up", status="200") == 13
    finally:
        gateway.stop()


@pytest.fixture
def local_gateway(tmp_path: Path) -> Iterator[Gateway]:
    config = {
        "server": {"keepalive_first_s": 0.05, "shutdown_timeout_s": 0},
        "models": [{"name": LOCAL_MODEL, "provider": "local", "parallel": 1, "queue_size": 4}],
    }
    server = start_gateway(tmp_path, config, startup_s=120)
    yield server
    server.stop()


def test_the_local_queue_length_is_reported(local_gateway: Gateway) -> None:
    gateway = local_gateway
    long_body = {
        "model": LOCAL_MODEL,
        "messages": [{"role": "user", "content": "Write a long story."}],
        "max_tokens": 1800,
        "response_format": LONG_JSON,
    }
    running = StreamClient(gateway, long_body)
    assert running.content.wait(120), running.raw
    short = {"model": LOCAL_MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3}
    queued = [StreamClient(gateway, short) for _ in range(2)]
    for client in queued:
        assert client.keepalive.wait(60), client.raw  # committed while waiting in the queue
    samples = parse(httpx.get(gateway.base_url + "/metrics", timeout=10).text)
    assert value(samples, "sluicegate_local_queue_length", model=LOCAL_MODEL) == 2
    assert value(samples, "sluicegate_requests_in_flight", model=LOCAL_MODEL) == 3
    gateway.process.terminate()  # shutdown_timeout_s 0: ends all three at once, then exits
    for client in (running, *queued):
        assert client.done.wait(60)
