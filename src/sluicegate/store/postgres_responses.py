"""The Responses store in PostgreSQL, beside the keys and the ledger, so a response stored through
one gateway is found through any other sharing the database. A continuation's whole chain is one
recursive query, however long it is."""

from __future__ import annotations

from typing import Any

import orjson

from sluicegate.store.postgres import PostgresStore
from sluicegate.store.responses import StoredResponse

_COLUMNS = "id, key_id, created_at, previous_response_id, input_items, response, owner, expires_at"
_NOW = "extract(epoch from clock_timestamp())"
PUT = (
    f"INSERT INTO responses ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO UPDATE SET"
    " key_id = excluded.key_id, created_at = excluded.created_at,"
    " previous_response_id = excluded.previous_response_id, input_items = excluded.input_items,"
    " response = excluded.response, owner = excluded.owner, expires_at = excluded.expires_at"
)
GET = f"SELECT {_COLUMNS} FROM responses WHERE id = $1 AND key_id = $2 AND (expires_at IS NULL OR expires_at > {_NOW})"
CHAIN = f"""
    WITH RECURSIVE chain({_COLUMNS}, depth) AS (
        SELECT {_COLUMNS}, 0 FROM responses
        WHERE id = $1 AND key_id = $2 AND (expires_at IS NULL OR expires_at > {_NOW})
        UNION ALL
        SELECT r.id, r.key_id, r.created_at, r.previous_response_id, r.input_items, r.response, r.owner,
               r.expires_at, chain.depth + 1
        FROM responses AS r JOIN chain ON r.id = chain.previous_response_id
        WHERE r.key_id = $2 AND chain.depth < $3 AND (r.expires_at IS NULL OR r.expires_at > {_NOW})
    )
    SELECT {_COLUMNS} FROM chain ORDER BY depth DESC
"""
DELETE = "DELETE FROM responses WHERE id = $1 AND key_id = $2 RETURNING id"
PURGE = f"DELETE FROM responses WHERE expires_at IS NOT NULL AND expires_at <= {_NOW} RETURNING id"


class PostgresResponseStore:
    def __init__(self, store: PostgresStore) -> None:
        self._store = store

    async def put(self, record: StoredResponse) -> None:
        await self._store.pool.execute(
            PUT,
            record.id,
            record.key_id,
            record.created_at,
            record.previous_response_id,
            orjson.dumps(record.input_items),
            orjson.dumps(record.response),
            record.owner,
            record.expires_at,
        )

    async def get(self, response_id: str, key_id: str) -> StoredResponse | None:
        row = await self._store.pool.fetchrow(GET, response_id, key_id)
        return _record(tuple(row)) if row is not None else None

    async def chain(self, response_id: str, key_id: str, limit: int = 1000) -> list[StoredResponse]:
        rows = await self._store.pool.fetch(CHAIN, response_id, key_id, limit - 1)
        return [_record(tuple(row)) for row in rows]

    async def delete(self, response_id: str, key_id: str) -> bool:
        return bool(await self._store.pool.fetch(DELETE, response_id, key_id))

    async def purge_expired(self) -> int:
        return len(await self._store.pool.fetch(PURGE))

    async def close(self) -> None:
        return None  # the pool belongs to the PostgresStore, which the gateway closes


def _record(row: tuple[Any, ...]) -> StoredResponse:
    response_id, key_id, created_at, previous, input_items, response, owner, expires_at = row
    return StoredResponse(
        id=str(response_id),
        key_id=str(key_id),
        created_at=float(created_at),
        previous_response_id=str(previous) if previous is not None else None,
        input_items=orjson.loads(input_items),
        response=orjson.loads(response),
        owner=str(owner) if owner is not None else None,
        expires_at=float(expires_at) if expires_at is not None else None,
    )
