"""The PostgreSQL store (asyncpg), for several gateway processes or hosts sharing one database.

The URL is a libpq URL; sluicegate also reads an extra `schema=NAME` query parameter (the
tables live in that schema, created if missing), so several gateways or test runs can share
one database without colliding.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from sluicegate.store import sql
from sluicegate.store.postgres_schema import MIGRATIONS
from sluicegate.store.records import (
    LEDGER_FIELDS,
    InstanceRow,
    KeyRecord,
    LedgerRecord,
    OpenRow,
    Reservation,
    ReservationAsk,
    Settlement,
    interrupted_records,
)

CONNECT_TIMEOUT_S = 10.0  # a database that does not answer: a clear error, not a minute's wait
_MIGRATION_LOCK = 0x5_1C_E6A7E  # pg_advisory_xact_lock id: one migrating process at a time
RESERVE_MANY = (
    "SELECT reserved, balance_nanos FROM sluicegate_reserve($1::text[], $2::text[], $3::bigint[], $4, $5::text)"
)
NOW = "extract(epoch from clock_timestamp())"  # heartbeats on the database's clock: hosts' clocks may differ
INSTANCE_INSERT = (
    f"INSERT INTO instances (id, host, pid, pid_start, started_at, heartbeat_at) VALUES ($1, $2, $3, $4, {NOW}, {NOW})"
)
INSTANCE_BEAT = f"UPDATE instances SET heartbeat_at = {NOW} WHERE id = $1 RETURNING id"
INSTANCES = f"SELECT id, host, pid, pid_start, {NOW} - heartbeat_at FROM instances"
OPEN_INSERT = (
    "INSERT INTO ledger_open (id, instance_id, created_at, record)"
    " SELECT * FROM unnest($1::text[], $2::text[], $3::float8[], $4::bytea[])"
)
OPEN_CLOSE = "DELETE FROM ledger_open WHERE id = ANY($1::text[]) RETURNING id"
LEDGER_HAS = "SELECT journal_id FROM ledger WHERE journal_id = ANY($1::text[]) AND journal_id IS NOT NULL"
SETTLE_RESERVATIONS = "DELETE FROM reservations WHERE id = ANY($1::text[]) RETURNING key_id, amount_nanos"


async def _no_reset(connection: object) -> None:
    return None


def split_schema(url: str) -> tuple[str, str | None]:
    """The URL without sluicegate's `schema` parameter, and that parameter."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((value for name, value in query if name == "schema"), None)
    rest = urlencode([(name, value) for name, value in query if name != "schema"])
    return urlunsplit(parts._replace(query=rest)), schema


class PostgresStore:
    backend = "postgresql"

    def __init__(self, url: str, min_size: int = 1, max_size: int = 8) -> None:
        self.url, self.schema = split_schema(url)
        self.instance_id: str | None = None  # the gateway process whose reservations these are
        self._min, self._max = min_size, max_size
        self._pool: asyncpg.Pool | None = None
        self._hot: asyncpg.Pool | None = None

    @property
    def pool(self) -> asyncpg.Pool:
        assert self._pool is not None, "the store is not open"
        return self._pool

    @property
    def hot(self) -> asyncpg.Pool:
        """Connections for the request path's reservations, committed without waiting for the WAL
        flush (synchronous_commit=off): a PostgreSQL crash may forget the last moment's
        reservations (releasing budget early), never a ledger row or spend, which the other pool
        commits durably."""
        assert self._hot is not None, "the store is not open"
        return self._hot

    async def open(self) -> None:
        settings = {"search_path": self.schema} if self.schema else {}
        if self.schema:
            conn = await asyncpg.connect(self.url, timeout=CONNECT_TIMEOUT_S)
            try:
                await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            except asyncpg.UniqueViolationError:
                pass  # another process created it at the same moment
            finally:
                await conn.close()
        # No reset query when a connection goes back to the pool (asyncpg's default costs a round
        # trip per use): these connections never change session state, listen or hold locks.
        self._pool = await asyncpg.create_pool(
            self.url, timeout=CONNECT_TIMEOUT_S, min_size=self._min, max_size=self._max, server_settings=settings, reset=_no_reset
        )
        self._hot = await asyncpg.create_pool(
            self.url,
            timeout=CONNECT_TIMEOUT_S,
            min_size=self._min,
            max_size=self._max,
            server_settings={**settings, "synchronous_commit": "off"},
            reset=_no_reset,
        )
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
            await conn.execute("CREATE TABLE IF NOT EXISTS sluicegate_schema (version INTEGER NOT NULL)")
            version = await conn.fetchval("SELECT version FROM sluicegate_schema")
            if version is None:
                await conn.execute("INSERT INTO sluicegate_schema (version) VALUES (0)")
                version = 0
            for number, statements in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in statements:
                    await conn.execute(statement)
                await conn.execute("UPDATE sluicegate_schema SET version = $1", number)

    async def ping(self) -> None:
        await self.pool.fetchval("SELECT 1")

    async def close(self) -> None:
        for pool in (self._hot, self._pool):
            if pool is not None:
                await pool.close()
        self._pool = self._hot = None

    async def create_key(self, key: KeyRecord, key_hash: str) -> None:
        await self.pool.execute(sql.KEY_INSERT, *sql.key_insert_params(key, key_hash))

    async def load_keys(self) -> list[tuple[str, KeyRecord]]:
        rows = await self.pool.fetch(f"SELECT key_hash, {sql.KEY_COLUMNS} FROM api_keys")
        return [(str(row[0]), sql.key_from_row(tuple(row)[1:])) for row in rows]

    async def keys_version(self) -> tuple[int, float]:
        row = await self.pool.fetchrow(sql.KEYS_VERSION)
        assert row is not None
        return int(row[0]), float(row[1] or 0)

    async def get_key(self, ref: str) -> KeyRecord | None:
        row = await self.pool.fetchrow(sql.KEY_GET, ref)
        return sql.key_from_row(row) if row else None

    async def update_key(self, key_id: str, changes: dict[str, Any]) -> KeyRecord | None:
        query, params = sql.key_update(key_id, changes, "$")
        row = await self.pool.fetchrow(query, *params)
        return sql.key_from_row(row) if row else None

    async def reserve(self, key_id: str, reservation_id: str, amount_nanos: int, now: float) -> Reservation:
        (answer,) = await self.reserve_many([(key_id, reservation_id, amount_nanos, now)])
        return answer

    async def reserve_many(self, items: Sequence[ReservationAsk]) -> list[Reservation]:
        if not items:
            return []
        # Rows are locked in key order, whichever process sends the batch: no deadlock between
        # two gateways' batches. The answers go back in the items' order.
        order = sorted(range(len(items)), key=lambda i: items[i][0])
        rows = await self.hot.fetch(
            RESERVE_MANY,
            [items[i][0] for i in order],
            [items[i][1] for i in order],
            [items[i][2] for i in order],
            max(item[3] for item in items),
            self.instance_id,
        )
        answers: list[Reservation] = [Reservation(False, 0)] * len(items)
        for i, row in zip(order, rows, strict=True):
            answers[i] = Reservation(bool(row[0]), int(row[1]) if row[1] is not None else 0)
        return answers

    async def settle(self, records: Sequence[LedgerRecord], releases: Sequence[str] = ()) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            opened = [r.open_id for r in records if r.open_id]
            if opened:
                closed = {row[0] for row in await conn.fetch(OPEN_CLOSE, opened)}
                if len(closed) < len(opened):  # reaped meanwhile (sql.unreaped)
                    records = sql.unreaped(list(records), closed)
            await _write_settlement(conn, Settlement.of(list(records), releases), {})

    async def open_requests(self, rows: Sequence[OpenRow]) -> None:
        """Admitted requests' open rows, committed before their upstream calls begin (on the
        reservations' connections: a gateway that dies has committed them; only a crash of
        PostgreSQL itself could forget the last moment's)."""
        if rows:
            await self.hot.execute(OPEN_INSERT, *(list(column) for column in zip(*rows, strict=True)))

    async def record_progress(self, rows: Sequence[tuple[str, bytes]]) -> None:
        """New records for open rows (the tokens produced so far); a row already closed is left alone."""
        await self.hot.executemany(sql.OPEN_PROGRESS, [(open_id, blob) for open_id, blob in rows])

    async def register_instance(self, instance_id: str, host: str, pid: int, pid_start: str) -> None:
        await self.pool.execute(INSTANCE_INSERT, instance_id, host, pid, pid_start)

    async def heartbeat(self, instance_id: str) -> bool:
        return bool(await self.pool.fetch(INSTANCE_BEAT, instance_id))

    async def instances(self) -> list[InstanceRow]:
        rows = await self.pool.fetch(INSTANCES)
        return [InstanceRow(str(r[0]), str(r[1]), int(r[2]), str(r[3]), float(r[4])) for r in rows]

    async def reap_instance(self, instance_id: str) -> tuple[int, int]:
        """A dead process's open rows become interrupted ledger records and its reservations are
        released, in one transaction, by whichever live process claims it first."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(sql.REAP_LOCK)
            if not await conn.fetch(sql.INSTANCE_CLAIM, instance_id):
                return 0, 0  # another process reaped it, or it stopped cleanly
            blobs = await conn.fetch(sql.OPEN_REAP, instance_id)
            records = await _unbilled(conn, [bytes(row[0]) for row in blobs])
            freed = await conn.fetch(sql.RESERVATIONS_OF, instance_id)
            await _write_settlement(conn, Settlement.of(records), sql.amounts_by_key(freed))
        return len(records), len(freed)

    async def reap_open(self, blobs: Sequence[bytes]) -> int:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(sql.REAP_LOCK)
            records = await _unbilled(conn, list(blobs))
            await _write_settlement(conn, Settlement.of(records), {})
        return len(records)

    async def release_expired(self, cutoff: float) -> int:
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(sql.RESERVATIONS_EXPIRED, cutoff)
            spend = sql.spend_params({}, sql.amounts_by_key(rows))
            if spend:
                await conn.executemany(sql.SPEND, spend)
            return len(rows)

    async def usage(
        self,
        groups: Sequence[str],
        key_id: str | None = None,
        model: str | None = None,
        since: str | None = None,
        until: str | None = None,
    ) -> list[dict[str, Any]]:
        query, params = sql.usage_query(list(groups), key_id, model, since, until, "$")
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(query, *params)
            names = {str(r[0]): str(r[1]) for r in await conn.fetch(sql.KEY_NAMES)}
        return sql.usage_rows(list(groups), [tuple(r) for r in rows], names)

    async def recent(
        self,
        limit: int = 50,
        key_id: str | None = None,
        model: str | None = None,
        before_id: int | None = None,
    ) -> list[dict[str, Any]]:
        query, params = sql.recent_query(limit, key_id, model, before_id, "$")
        rows = await self.pool.fetch(query, *params)
        return sql.recent_rows([tuple(r) for r in rows])

    async def ledger_totals(self) -> dict[str, int]:
        row = await self.pool.fetchrow(sql.LEDGER_TOTALS)
        assert row is not None
        return {"rows": int(row[0]), "cost_nanos": int(row[1] or 0)}


async def _unbilled(conn: Any, blobs: list[bytes]) -> list[LedgerRecord]:
    """The interrupted records of open rows whose requests the ledger does not hold yet (by open id)."""
    records = interrupted_records(blobs)
    if records:
        for row in await conn.fetch(LEDGER_HAS, list(records)):
            records.pop(str(row[0]), None)
    return list(records.values())


async def _write_settlement(conn: Any, batch: Settlement, released: dict[str, int]) -> None:
    """The rows, their reservations released into the spend (plus `released`, per key), the daily sums."""
    # COPY, not an INSERT per row: PostgreSQL parses, plans and runs one statement per row
    # of `executemany`, and that server-side work was most of what a ledger row cost
    if batch.records:
        rows = [r.row() for r in batch.records]
        await conn.copy_records_to_table("ledger", records=rows, columns=LEDGER_FIELDS)
    if batch.reservations:
        for key_id, amount in sql.amounts_by_key(await conn.fetch(SETTLE_RESERVATIONS, batch.reservations)).items():
            released[key_id] = released.get(key_id, 0) + amount
    spend = sql.spend_params(batch.spend, released)
    if spend:
        await conn.executemany(sql.SPEND, spend)
    daily = sql.daily_params(batch.daily)
    if daily:
        await conn.executemany(sql.DAILY_UPSERT, daily)
