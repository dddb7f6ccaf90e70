"""The Responses store in the gateway's SQLite file.

SQLite calls block, so each runs on a worker thread (`asyncio.to_thread`) and the event loop
stays free. A continuation's whole chain is one recursive query, however long it is.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson

from sluicegate.store.responses import StoredResponse
from sluicegate.store.sqlite import SQLiteStore

_COLUMNS = "id, key_id, created_at, previous_response_id, input_items, response, owner, expires_at"
_LIVE = "(expires_at IS NULL OR expires_at > ?)"


class SQLiteResponseStore:
    def __init__(self, store: SQLiteStore) -> None:
        self._store = store

    async def put(self, record: StoredResponse) -> None:
        params = (
            record.id,
            record.key_id,
            record.created_at,
            record.previous_response_id,
            orjson.dumps(record.input_items),
            orjson.dumps(record.response),
            record.owner,
            record.expires_at,
        )
        await asyncio.to_thread(
            self._store.execute,
            f"INSERT OR REPLACE INTO responses ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            params,
        )

    async def get(self, response_id: str, key_id: str) -> StoredResponse | None:
        rows = await asyncio.to_thread(
            self._store.execute,
            f"SELECT {_COLUMNS} FROM responses WHERE id = ? AND key_id = ? AND {_LIVE}",
            (response_id, key_id, time.time()),
        )
        return _record(rows[0]) if rows else None

    async def chain(self, response_id: str, key_id: str, limit: int = 1000) -> list[StoredResponse]:
        rows = await asyncio.to_thread(
            self._store.execute,
            f"""
            WITH RECURSIVE chain({_COLUMNS}, depth) AS (
                SELECT {_COLUMNS}, 0 FROM responses WHERE id = ? AND key_id = ? AND {_LIVE}
                UNION ALL
                SELECT r.id, r.key_id, r.created_at, r.previous_response_id, r.input_items, r.response,
                       r.owner, r.expires_at, chain.depth + 1
                FROM responses AS r JOIN chain ON r.id = chain.previous_response_id
                WHERE r.key_id = ? AND chain.depth < ? AND (r.expires_at IS NULL OR r.expires_at > ?)
            )
            SELECT {_COLUMNS} FROM chain ORDER BY depth DESC
            """,
            (response_id, key_id, time.time(), key_id, limit - 1, time.time()),
        )
        return [_record(row) for row in rows]

    async def delete(self, response_id: str, key_id: str) -> bool:
        rows = await asyncio.to_thread(
            self._store.execute,
            "DELETE FROM responses WHERE id = ? AND key_id = ? RETURNING id",
            (response_id, key_id),
        )
        return bool(rows)

    async def purge_expired(self) -> int:
        rows = await asyncio.to_thread(
            self._store.execute,
            "DELETE FROM responses WHERE expires_at IS NOT NULL AND expires_at <= ? RETURNING id",
            (time.time(),),
        )
        return len(rows)

    async def close(self) -> None:
        return None  # the connection belongs to the SQLiteStore, which the gateway closes


def _record(row: tuple[object, ...]) -> StoredResponse:
    response_id, key_id, created_at, previous, input_items, response, owner, expires_at = row
    items: Any = orjson.loads(input_items)  # type: ignore[arg-type]
    body: Any = orjson.loads(response)  # type: ignore[arg-type]
    return StoredResponse(
        id=str(response_id),
        key_id=str(key_id),
        created_at=float(created_at),  # type: ignore[arg-type]
        previous_response_id=str(previous) if previous is not None else None,
        input_items=items,
        response=body,
        owner=str(owner) if owner is not None else None,
        expires_at=float(expires_at) if expires_at is not None else None,  # type: ignore[arg-type]
    )
