"""The SQLite response store: kept per key, chains read back in order, and older data dirs
migrated forward."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from sluicegate.store.responses import StoredResponse
from sluicegate.store.sqlite import SQLiteStore
from sluicegate.store.sqlite_responses import SQLiteResponseStore


def record(
    response_id: str, key_id: str = "key_a", previous: str | None = None, text: str = ""
) -> StoredResponse:
    return StoredResponse(
        id=response_id,
        key_id=key_id,
        created_at=1700000000.5,
        previous_response_id=previous,
        input_items=[{"id": f"msg_in_{response_id}", "type": "message", "role": "user", "content": []}],
        response={"id": response_id, "object": "response", "output": [{"type": "message", "text": text}]},
    )


async def test_a_response_is_found_only_by_the_key_that_made_it(tmp_path: Path) -> None:
    store = SQLiteResponseStore(SQLiteStore(tmp_path / "db.sqlite"))
    await store.put(record("resp_1", text="héllo ✓"))
    found = await store.get("resp_1", "key_a")
    assert found == record("resp_1", text="héllo ✓")
    assert await store.get("resp_1", "key_b") is None
    assert await store.get("resp_2", "key_a") is None
    assert not await store.delete("resp_1", "key_b")
    assert await store.get("resp_1", "key_a") is not None
    assert await store.delete("resp_1", "key_a")
    assert await store.get("resp_1", "key_a") is None
    assert not await store.delete("resp_1", "key_a")


async def test_a_chain_comes_back_oldest_first_and_stops_at_other_keys(tmp_path: Path) -> None:
    store = SQLiteResponseStore(SQLiteStore(tmp_path / "db.sqlite"))
    await store.put(record("resp_0", key_id="key_b"))
    await store.put(record("resp_1", previous="resp_0"))
    await store.put(record("resp_2", previous="resp_1"))
    await store.put(record("resp_3", previous="resp_2"))
    await store.put(record("resp_side", previous="resp_1"))
    assert [r.id for r in await store.chain("resp_3", "key_a")] == ["resp_1", "resp_2", "resp_3"]
    assert [r.id for r in await store.chain("resp_side", "key_a")] == ["resp_1", "resp_side"]
    assert [r.id for r in await store.chain("resp_3", "key_a", limit=2)] == ["resp_2", "resp_3"]
    assert await store.chain("resp_3", "key_b") == []
    assert await store.chain("resp_9", "key_a") == []


async def test_a_data_dir_from_before_the_responses_table_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE api_keys (id TEXT PRIMARY KEY, name TEXT NOT NULL, key_hash TEXT NOT NULL UNIQUE,"
            " key_hint TEXT NOT NULL, created_at REAL NOT NULL, revoked_at REAL)"
        )
        conn.execute("INSERT INTO api_keys VALUES ('key_1', 'old', 'h', 'sk-...', 1.0, NULL)")
        conn.execute("PRAGMA user_version = 1")
    sqlite = SQLiteStore(path)
    store = SQLiteResponseStore(sqlite)
    await store.put(record("resp_1"))
    assert (await store.get("resp_1", "key_a")) is not None
    assert sqlite.execute("SELECT name FROM api_keys") == [("old",)]
    await sqlite.close()


async def test_a_response_past_its_retention_is_absent_and_purged(tmp_path: Path) -> None:
    store = SQLiteResponseStore(SQLiteStore(tmp_path / "db.sqlite"))
    expired = record("resp_old")
    expired.expires_at = time.time() - 1
    kept = record("resp_new", previous="resp_old")
    kept.expires_at = time.time() + 3600
    forever = record("resp_forever")
    for item in (expired, kept, forever):
        await store.put(item)
    assert await store.get("resp_old", "key_a") is None  # as good as absent before it is purged
    assert [r.id for r in await store.chain("resp_new", "key_a")] == ["resp_new"]
    assert (await store.get("resp_new", "key_a")) == kept
    assert await store.purge_expired() == 1
    assert await store.purge_expired() == 0
    assert await store.get("resp_forever", "key_a") is not None
