"""The local queue's Retry-After is an honest estimate: the running job's remaining time by the
measured generation time of finished jobs (time spent queued is not the model's)."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sluicegate.providers.local.provider import ServiceTimes
from tests.support.server import LOCAL_MODEL, Gateway, start_gateway
from tests.support.streams import LONG_JSON, StreamClient


def test_the_estimate_is_what_the_running_job_has_left() -> None:
    times = ServiceTimes(initial_s=2.0)
    assert times.retry_after(None) == 2.0
    times.add(4.0)
    assert times.mean_s == 4.0  # the first measurement replaces the guess
    times.add(2.0)
    assert times.mean_s == pytest.approx(3.6)
    assert times.retry_after(running_for_s=1.0) == pytest.approx(2.6)
    assert times.retry_after(running_for_s=10.0) == 1.0  # overdue: soon, but not "now"


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    config = {
        "server": {"keepalive_first_s": 0.05, "shutdown_timeout_s": 0},
        "models": [{"name": LOCAL_MODEL, "provider": "local", "parallel": 1, "queue_size": 2}],
    }
    server = start_gateway(tmp_path, config, startup_s=120)
    yield server
    server.stop()


def test_retry_after_is_no_longer_than_a_job_the_client_saw(gateway: Gateway) -> None:
    headers = {"Authorization": f"Bearer {gateway.api_key}"}
    short = {"model": LOCAL_MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8}
    began = time.monotonic()
    assert (
        httpx.post(gateway.v1 + "/chat/completions", json=short, headers=headers, timeout=120).status_code
        == 200
    )
    seen_s = time.monotonic() - began  # spans the job's generation, so it is at least as long

    long_body = {
        "model": LOCAL_MODEL,
        "messages": [{"role": "user", "content": "Write a long story."}],
        "max_tokens": 1800,
        "response_format": LONG_JSON,
    }
    running = StreamClient(gateway, long_body)
    assert running.content.wait(120), running.raw
    queued = [StreamClient(gateway, short) for _ in range(2)]
    for client in queued:
        assert client.keepalive.wait(60), client.raw

    refused = httpx.post(gateway.v1 + "/chat/completions", json=short, headers=headers, timeout=60)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "model_overloaded"
    # Before, this was the mean time from admission (queue included) times the requests admitted.
    assert 1 <= int(refused.headers["retry-after"]) <= max(1, math.ceil(seen_s))
