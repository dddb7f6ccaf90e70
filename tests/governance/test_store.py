"""The store on both backends: atomic reservations, settlement, aggregates, migrations."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

from sluicegate.governance.keys import KeyStore, hash_key, new_key
from sluicegate.store.base import Store
from sluicegate.store.records import LedgerRecord, usd_to_nanos
from sluicegate.store.sqlite import SQLiteStore
from sluicegate.store.sqlite_schema import MIGRATIONS
from tests.governance.conftest import Backend


def record(key_id: str, cost: int, reservation: str | None = None, model: str = "m", **fields: object) -> LedgerRecord:
    return LedgerRecord(
        request_id="req_" + str(time.perf_counter_ns()),
        created_at=time.time(),
        key_id=key_id,
        door="chat_completions",
        model=model,
        prompt_tokens=10,
        completion_tokens=5,
        cost_nanos=cost,
        reservation_id=reservation,
        **fields,  # type: ignore[arg-type]
    )


async def test_fifty_concurrent_reservations_against_a_budget_worth_ten(store: Store) -> None:
    key, secret = new_key("race", budget_nanos=usd_to_nanos(1.0))
    await store.create_key(key, hash_key(secret))
    amount = usd_to_nanos(0.1)
    results = await asyncio.gather(*(store.reserve(key.id, f"res_{i}", amount, time.time()) for i in range(50)))
    granted = [f"res_{i}" for i, r in enumerate(results) if r.ok]
    assert len(granted) == 10
    refused = [r for r in results if not r.ok]
    assert all(r.balance_nanos == 0 for r in refused)
    # Each settles for less than it reserved: the spend is what the ledger says, nothing stays reserved.
    await store.settle([record(key.id, usd_to_nanos(0.07), res) for res in granted])
    after = await store.get_key(key.id)
    assert after is not None
    assert after.reserved_nanos == 0
    assert after.spent_nanos == 10 * usd_to_nanos(0.07)
    totals = await store.ledger_totals()
    assert totals == {"rows": 10, "cost_nanos": after.spent_nanos}
    # The budget freed by the cheaper answers can be reserved again, up to what is left.
    again = await store.reserve(key.id, "res_again", usd_to_nanos(0.3), time.time())
    assert again.ok and again.balance_nanos == 0
    assert not (await store.reserve(key.id, "res_more", 1, time.time())).ok


async def test_a_batch_of_reservations_is_one_transaction_checked_in_order(store: Store) -> None:
    """reserve_many: each item against the budget the items before it left, answers in order."""
    tight, secret = new_key("tight", budget_nanos=1000)
    loose, secret2 = new_key("loose")
    await store.create_key(tight, hash_key(secret))
    await store.create_key(loose, hash_key(secret2))
    now = time.time()
    asks = [
        (tight.id, "b1", 400, now),
        (loose.id, "b2", 10**15, now),
        (tight.id, "b3", 400, now),
        (tight.id, "b4", 400, now),  # 1200 > 1000: refused, 200 left
        (tight.id, "b5", 200, now),  # fits exactly
    ]
    answers = await store.reserve_many(asks)
    assert [a.ok for a in answers] == [True, True, True, False, True]
    assert [answers[0].balance_nanos, answers[2].balance_nanos, answers[3].balance_nanos] == [600, 200, 200]
    assert answers[4].balance_nanos == 0
    after = await store.get_key(tight.id)
    assert after is not None and after.reserved_nanos == 1000
    # the refused one holds nothing: settling the others releases everything
    await store.settle([record(tight.id, 100, r) for r in ("b1", "b3", "b5")] + [record(loose.id, 5, "b2")])
    after = await store.get_key(tight.id)
    assert after is not None and (after.reserved_nanos, after.spent_nanos) == (0, 300)
    assert await store.reserve_many([]) == []


async def test_a_key_without_budget_always_reserves_and_still_spends(store: Store) -> None:
    key, secret = new_key("free")
    await store.create_key(key, hash_key(secret))
    assert (await store.reserve(key.id, "r1", 10**12, time.time())).ok
    await store.settle([record(key.id, 123, "r1"), record(key.id, 77)])
    after = await store.get_key(key.id)
    assert after is not None and after.spent_nanos == 200 and after.reserved_nanos == 0


async def test_expired_reservations_are_released_once(store: Store) -> None:
    key, secret = new_key("crashy", budget_nanos=1000)
    await store.create_key(key, hash_key(secret))
    assert (await store.reserve(key.id, "old", 600, time.time() - 7200)).ok
    assert (await store.reserve(key.id, "new", 400, time.time())).ok
    assert not (await store.reserve(key.id, "over", 1, time.time())).ok
    assert await store.release_expired(time.time() - 3600) == 1
    # The late settlement of the released one must not release it a second time.
    await store.settle([record(key.id, 500, "old")])
    after = await store.get_key(key.id)
    assert after is not None
    assert after.reserved_nanos == 400
    assert after.spent_nanos == 500


async def test_usage_aggregates_by_key_model_and_day(store: Store) -> None:
    a, sa = new_key("a")
    b, sb = new_key("b")
    await store.create_key(a, hash_key(sa))
    await store.create_key(b, hash_key(sb))
    await store.settle([record(a.id, 100, model="x"), record(a.id, 50, model="y"), record(b.id, 5, model="x")])
    await store.settle([record(a.id, 1, model="x", status=500, error_type="server_error")])
    by_key_model = await store.usage(["key", "model"])
    assert {(r["key_name"], r["model"], r["requests"], r["errors"]) for r in by_key_model} == {
        ("a", "x", 2, 1),
        ("a", "y", 1, 0),
        ("b", "x", 1, 0),
    }
    assert len(by_key_model) == 3
    row = next(r for r in by_key_model if r["key_id"] == a.id and r["model"] == "x")
    assert row["prompt_tokens"] == 20 and row["completion_tokens"] == 10 and row["total_tokens"] == 30
    assert row["cost_usd"] == 101 / 1e9
    (total,) = await store.usage([])
    assert total["requests"] == 4
    by_day = await store.usage(["day"], key_id=a.id)
    assert len(by_day) == 1 and by_day[0]["requests"] == 3
    assert await store.usage(["day"], since="2999-01-01") == []
    recent = await store.recent(limit=2)
    assert [r["status"] for r in recent] == [500, 200]
    assert recent[0]["id"] > recent[1]["id"]
    older = await store.recent(limit=10, before_id=recent[1]["id"])
    assert len(older) == 2


async def test_keys_version_changes_with_rules_not_with_spend(store: Store) -> None:
    keys = KeyStore(store)
    key, _ = await keys.create("v", budget_nanos=10**9)
    version = await store.keys_version()
    await store.settle([record(key.id, 5)])
    assert await store.keys_version() == version
    await asyncio.sleep(0.01)
    updated = await keys.update(key.id, {"rpm": 5, "models": ("a", "b")})
    assert updated is not None and updated.rpm == 5 and updated.models == ("a", "b")
    assert await store.keys_version() != version
    by_hint = await store.get_key(key.hint)
    assert by_hint is not None and by_hint.id == key.id


async def test_migrations_run_once_when_opened_again(backend: Backend, store: Store) -> None:
    key, secret = new_key("persist")
    await store.create_key(key, hash_key(secret))
    again = backend.store()
    await again.open()
    try:
        assert (await again.get_key(key.id)) is not None
    finally:
        await again.close()


async def test_a_data_dir_of_the_first_version_is_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "sluicegate.db"
    conn = sqlite3.connect(path)
    conn.execute(MIGRATIONS[0][0])
    conn.execute(
        "INSERT INTO api_keys (id, name, key_hash, key_hint, created_at) VALUES ('key_old', 'old', ?, 'h', 1.0)",
        (hash_key("sk-sg-old"),),
    )
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    store = SQLiteStore(path)
    await store.open()
    try:
        keys = await store.load_keys()
        assert [(h, k.id, k.budget_nanos, k.spent_nanos, k.admin) for h, k in keys] == [
            (hash_key("sk-sg-old"), "key_old", None, 0, False)
        ]
        assert (await store.reserve("key_old", "r", 5, time.time())).ok
    finally:
        await store.close()


async def test_a_batch_waits_for_the_write_lock_off_the_loop_when_another_holds_it(tmp_path: Path) -> None:
    """SQLite: batches are written on the loop's own connection, which never waits; while another
    process holds the write lock, the batch is handed to the bulk thread, the loop keeps running,
    and the batch lands whole once the lock is free."""
    store = SQLiteStore(tmp_path / "sluicegate.db")
    await store.open()
    try:
        key, secret = new_key("locked", budget_nanos=usd_to_nanos(1.0))
        await store.create_key(key, hash_key(secret))
        assert (await store.reserve(key.id, "res_1", 300, time.time())).ok
        await store.settle([record(key.id, 100)])  # the free case, on the loop's connection

        other = sqlite3.connect(tmp_path / "sluicegate.db", isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another writer (a second worker, the CLI) holds the lock
        settling = asyncio.ensure_future(store.settle([record(key.id, 200, "res_1"), record(key.id, 7)]))
        for _ in range(20):
            await asyncio.sleep(0.01)
        # the loop ran on (the connection on it waits for nothing; the bulk thread's waits 30 s,
        # and would hold the loop past the lock's COMMIT below, never reached then)
        assert not settling.done(), "nothing can be written while the lock is held"
        other.execute("COMMIT")
        other.close()
        await asyncio.wait_for(settling, 30)

        after = await store.get_key(key.id)
        assert after is not None
        assert (after.spent_nanos, after.reserved_nanos) == (307, 0)
        assert await store.ledger_totals() == {"rows": 3, "cost_nanos": 307}
    finally:
        await store.close()


async def test_the_loops_writes_are_checkpointed_into_the_database_file(tmp_path: Path) -> None:
    """The loop's connection never checkpoints (an fsync); the bulk thread folds the WAL back."""
    store = SQLiteStore(tmp_path / "sluicegate.db")
    await store.open()
    try:
        key, secret = new_key("wal")
        await store.create_key(key, hash_key(secret))
        await store.settle([record(key.id, 1) for _ in range(200)])
        # the database file alone (no WAL beside it) already holds the batch
        alone = tmp_path / "copy.db"
        alone.write_bytes((tmp_path / "sluicegate.db").read_bytes())
        copy = sqlite3.connect(alone)
        assert copy.execute("SELECT COUNT(*) FROM ledger").fetchone() == (200,)
        copy.close()
    finally:
        await store.close()


def test_the_utc_day_of_any_moment_is_the_calendar_day() -> None:
    """utc_day keeps its last answer; every moment still gets its own day, around midnights too."""
    import datetime as dt
    import random

    from sluicegate.store.records import utc_day

    rng = random.Random(7)
    moments = [0.0, 86_399.999, 86_400.0, 1_764_115_199.9999, 1_764_115_200.0, -0.5]
    moments += [rng.uniform(0, 4e9) for _ in range(2000)]
    moments += [1_764_115_200.0 + rng.uniform(-2, 2) for _ in range(200)]  # back and forth over one midnight
    for moment in moments:
        assert utc_day(moment) == dt.datetime.fromtimestamp(moment, dt.UTC).strftime("%Y-%m-%d"), moment
