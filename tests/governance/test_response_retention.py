"""Stored responses' retention (`responses.store_ttl_days`) on both stores: a response past it
is absent at once (reads skip it) and removed by the purge; and the event log in Redis, as the
replicas share it: a reader replays, follows, and stops at the end or when the writer is gone;
and the per-key count of background responses the replicas keep there."""

from __future__ import annotations

import asyncio
import time

import pytest

from sluicegate.gateway import response_store
from sluicegate.store import redis_event_log
from sluicegate.store.base import Store
from sluicegate.store.redis_event_log import RedisEventLog
from sluicegate.store.responses import StoredResponse
from tests.governance.conftest import Backend


def record(response_id: str, expires_at: float | None, previous: str | None = None) -> StoredResponse:
    return StoredResponse(
        id=response_id,
        key_id="key_a",
        created_at=1700000000.0,
        previous_response_id=previous,
        input_items=[],
        response={"id": response_id, "status": "completed", "background": True},
        owner="proc_a",
        expires_at=expires_at,
    )


async def test_a_response_past_its_retention_is_absent_then_purged(store: Store) -> None:
    responses = response_store(store)
    await responses.put(record("resp_old", time.time() - 1))
    await responses.put(record("resp_new", time.time() + 3600, previous="resp_old"))
    await responses.put(record("resp_forever", None))
    assert await responses.get("resp_old", "key_a") is None
    assert [r.id for r in await responses.chain("resp_new", "key_a")] == ["resp_new"]
    found = await responses.get("resp_new", "key_a")
    assert found is not None and found.owner == "proc_a" and found.expires_at is not None
    assert await responses.purge_expired() == 1
    assert await responses.get("resp_forever", "key_a") is not None


async def test_the_redis_event_log_replays_follows_and_ends(pg_backend: Backend) -> None:
    assert pg_backend.redis_url is not None
    log = RedisEventLog(pg_backend.redis_url, pg_backend.prefix, ttl_s=60, max_events=100)
    try:
        await log.append("s1", [(0, b"a"), (1, b"b")])

        async def read_all(after: int) -> list[tuple[int, bytes]]:
            return [entry async for entry in log.read("s1", after, poll_s=0.2)]

        reader = asyncio.ensure_future(read_all(0))
        await asyncio.sleep(0.1)
        await log.append("s1", [(2, b"c")])
        await log.end("s1")
        assert await reader == [(1, b"b"), (2, b"c")]
        assert await read_all(-1) == [(0, b"a"), (1, b"b"), (2, b"c")]
        await log.set_meta("s1", b"{}")
        assert await log.get_meta("s1") == b"{}"

        await log.append("s2", [(0, b"x")])

        async def gone() -> bool:
            return False

        assert [entry async for entry in log.read("s2", -1, gone, poll_s=0.2)] == [(0, b"x")]
        assert [entry async for entry in log.read("nothing", -1)] == []
    finally:
        await log.close()


async def test_the_redis_claims_are_shared_by_replicas_and_lapse_when_not_renewed(
    pg_backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert pg_backend.redis_url is not None
    one = RedisEventLog(pg_backend.redis_url, pg_backend.prefix)
    two = RedisEventLog(pg_backend.redis_url, pg_backend.prefix)
    try:
        assert await one.claim("key_a", "r1", 2) and await two.claim("key_a", "r2", 2)
        assert not await two.claim("key_a", "r3", 2)  # the two replicas count together
        assert await two.claim("key_a", "r1", 1)  # a renewal, whatever the count
        await one.unclaim("key_a", "r2")
        assert await two.claim("key_a", "r3", 2)
        monkeypatch.setattr(redis_event_log, "CLAIM_LEASE_S", 0.2)
        assert await one.claim("key_b", "r1", 1)
        assert not await two.claim("key_b", "r2", 1)
        await asyncio.sleep(0.4)  # r1's writer died: its claim lapses
        assert await two.claim("key_b", "r2", 1)
    finally:
        await one.close()
        await two.close()
