"""Redis or PostgreSQL unreachable: one clear line naming the service and its URL (password
masked) at start; the gateway refuses to start without its database and starts degraded without
Redis; `/health` (200, liveness) and `/health/ready` (503 while a dependency is down) tell each
dependency's state; the admin API and keys with rules get 503s in OpenAI's shape naming it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.governance.conftest import PG_BASE, Backend
from tests.governance.support import FREE, HI, gateway_config, start
from tests.support.openai_upstream import OpenAIUpstream
from tests.support.server import free_port, start_gateway
from tests.support.tcp_proxy import TcpProxy

PASSWORD = "hunter2-not-shown"


def _chat(base: str, secret: str) -> httpx.Response:
    body = {"model": FREE, "messages": HI, "max_tokens": 1}
    return httpx.post(base + "/chat/completions", json=body, headers={"Authorization": f"Bearer {secret}"}, timeout=30)


def test_a_wrong_redis_url_starts_degraded_and_says_so(tmp_path: Path, upstream: OpenAIUpstream) -> None:
    config = gateway_config(upstream, Backend("sqlite", tmp_path / "data"))
    url = f"redis://:{PASSWORD}@127.0.0.1:{free_port()}/0"
    config["redis"] = {"url": url}
    gov = start(tmp_path / "gw", config)
    try:
        log = gov.gateway.log()
        named = [line for line in log.splitlines() if f"redis://:***@127.0.0.1:{url.rsplit(':', 1)[1]}" in line]
        assert named and "starting degraded" in "\n".join(named), log
        assert PASSWORD not in log
        health = httpx.get(gov.gateway.base_url + "/health")
        assert health.status_code == 200
        assert health.json()["status"] == "degraded"
        assert health.json()["dependencies"]["redis"]["status"] == "down"
        assert health.json()["dependencies"]["database"]["status"] == "ok"
        assert httpx.get(gov.gateway.base_url + "/health/ready").status_code == 503
        _, limited = gov.new_key(rpm=100)
        refused = _chat(gov.v1, limited)
        assert refused.status_code == 503
        assert "Redis" in refused.json()["error"]["message"]
        _, free = gov.new_key()
        assert _chat(gov.v1, free).status_code == 200  # a key without limits does not need Redis
    finally:
        gov.stop()


def test_an_unreachable_postgresql_refuses_to_start_in_one_line(tmp_path: Path, upstream: OpenAIUpstream) -> None:
    config = gateway_config(upstream, Backend("sqlite", tmp_path / "data"))
    port = free_port()
    config["database"] = {"url": f"postgresql://postgres:{PASSWORD}@127.0.0.1:{port}/test"}
    with pytest.raises(RuntimeError) as failed:
        start_gateway(tmp_path / "gw", config)
    log = str(failed.value)
    assert f"database postgresql://postgres:***@127.0.0.1:{port}/test cannot be reached" in log
    assert PASSWORD not in log
    assert "Traceback" not in log


@pytest.fixture
def pg_proxy(pg_backend: Backend) -> Iterator[tuple[Backend, TcpProxy]]:
    proxy = TcpProxy(5432).start()
    yield pg_backend, proxy
    proxy.stop()


def _wait_for(check: Any, timeout_s: float = 20) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def test_while_postgresql_is_down_the_admin_api_and_budgeted_keys_get_503s_naming_it(
    pg_proxy: tuple[Backend, TcpProxy], tmp_path: Path, upstream: OpenAIUpstream
) -> None:
    backend, proxy = pg_proxy
    config = gateway_config(upstream, backend)
    config["database"] = {"url": PG_BASE.replace(":5432/", f":{proxy.port}/") + f"?schema={backend.schema}"}
    gov = start(tmp_path / "gw", config)
    try:
        _, budgeted = gov.new_key(budget_usd=1)
        proxy.cut()
        with gov.admin() as admin:
            answer = admin.get("/admin/keys")
        assert answer.status_code == 503, answer.text
        error = answer.json()["error"]
        assert set(error) >= {"message", "type", "code", "param"}
        assert "database (PostgreSQL)" in error["message"]
        refused = _chat(gov.v1, budgeted)
        assert refused.status_code == 503
        assert "PostgreSQL" in refused.json()["error"]["message"]
        down = _wait_for(lambda: httpx.get(gov.gateway.base_url + "/health").json()["status"] == "degraded")
        assert down
        assert httpx.get(gov.gateway.base_url + "/health").json()["dependencies"]["database"]["status"] == "down"
        proxy.restore()
        assert _wait_for(lambda: httpx.get(gov.gateway.base_url + "/health/ready").status_code == 200)
        with gov.admin() as admin:
            assert admin.get("/admin/keys").status_code == 200
    finally:
        gov.stop()
