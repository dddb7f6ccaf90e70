"""The governance hook in process: failing closed when Redis is gone, without leaking the budget
it had already reserved; nothing touches storage for a key without rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from sluicegate.core.exchange import Exchange
from sluicegate.core.request import ChatRequest
from sluicegate.errors import ServiceUnavailableError
from sluicegate.gateway import Gateway
from sluicegate.settings import Settings
from tests.support.server import free_port


def build(tmp_path: Path, redis_url: str | None = None) -> Gateway:
    raw: dict[str, object] = {
        "data_dir": str(tmp_path),
        "models": [{"name": "m", "provider": "openai", "base_url": "http://127.0.0.1:9/v1", "price": {"output": 1}}],
    }
    if redis_url:
        raw["redis"] = {"url": redis_url}
    return Gateway.build(Settings.model_validate(raw))


def exchange(key_id: str) -> Exchange:
    chat = ChatRequest(model="m", messages=[{"role": "user", "content": "hi"}], raw={}, max_tokens=10)
    return Exchange(request_id="r1", door="chat_completions", key_id=key_id, model="m", request=chat,
                    provider="openai", served_by="m")


async def test_redis_down_is_503_and_the_reservation_is_given_back(tmp_path: Path) -> None:
    gateway = build(tmp_path, f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    await gateway.store.open()
    await gateway.keys.start()
    assert gateway.governance is not None
    await gateway.governance.start()
    try:
        key, _ = await gateway.keys.create("k", budget_nanos=10**9, rpm=5)
        refused = exchange(key.id)
        with pytest.raises(ServiceUnavailableError) as caught:
            await gateway.admit(refused)
        assert caught.value.http_status == 503 and caught.value.retry_after == 1
        refused.failed(503, "server_error", "service_unavailable", caught.value.message)
        gateway.settle(refused)
    finally:
        await gateway.close()
    store = build(tmp_path).store
    await store.open()
    try:
        after = await store.get_key(key.id)
        assert after is not None and after.reserved_nanos == 0 and after.spent_nanos == 0
        assert (await store.ledger_totals())["rows"] == 1
    finally:
        await store.close()


async def test_a_key_without_rules_touches_no_storage(tmp_path: Path) -> None:
    gateway = build(tmp_path)
    await gateway.store.open()
    await gateway.keys.start()
    try:
        key, _ = await gateway.keys.create("plain")

        async def forbidden(*args: object) -> None:
            raise AssertionError("the store was called on the request path")

        gateway.store.reserve = forbidden  # type: ignore[method-assign]
        assert gateway.governance is not None
        gateway.governance.limiter.acquire = forbidden  # type: ignore[method-assign]
        await gateway.admit(exchange(key.id))
    finally:
        await gateway.close()
