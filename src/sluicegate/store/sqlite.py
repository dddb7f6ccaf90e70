"""The default store: one SQLite file in the data dir, migrated forward on open.

Migrations are a plain ordered list; `PRAGMA user_version` records how many have run, so a
newer gateway upgrades an older data dir and several worker processes can share the file (WAL).
The event loop never waits on SQLite. Two connections live on their own threads: one serves the
request path (budget reservations, key reads), the other usage queries and the writes that may
wait, so a large batch does not queue a reservation behind it in Python (SQLite's own write lock
still orders them; a batch commits in milliseconds). Ledger batches are written on the loop
itself, on a third connection that never waits (see `settle`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar, cast

from sluicegate.store import sql
from sluicegate.store.records import (
    InstanceRow,
    KeyRecord,
    LedgerRecord,
    OpenRow,
    Reservation,
    ReservationAsk,
    Settlement,
    interrupted_records,
)
from sluicegate.store.sqlite_schema import MIGRATIONS

T = TypeVar("T")
log = logging.getLogger("sluicegate.store")

BUSY_TIMEOUT_S = 30.0

# sqlite3 (CPython 3.11) binds int, float and str directly, but looks every None and bool up as
# a value to adapt: a tuple built, a registry miss, then two attribute lookups that fail, 0.8 us
# each, five or more per ledger row. Registered, they cost a registry hit and a C call; what is
# bound is unchanged (NULL; 0 or 1). `{}.get` is a C call returning None, bound as NULL.
sqlite3.register_adapter(type(None), cast("Callable[[None], None]", {}.get))
sqlite3.register_adapter(bool, int)


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=BUSY_TIMEOUT_S)
    _use_wal(conn)
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


class SQLiteStore:
    backend = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.instance_id: str | None = None  # the gateway process whose reservations these are
        self._hot: sqlite3.Connection | None = None
        self._bulk: sqlite3.Connection | None = None
        self._loop: sqlite3.Connection | None = None  # ledger batches, on the event loop; never waits
        self._checkpointed = 0.0  # when the loop connection's WAL was last checkpointed (monotonic)
        self._hot_thread = ThreadPoolExecutor(1, thread_name_prefix="sqlite-hot")
        self._bulk_thread = ThreadPoolExecutor(1, thread_name_prefix="sqlite-bulk")
        self._bulk_lock = threading.Lock()  # `execute` may use the bulk connection from other threads

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> SQLiteStore:
        return cls(data_dir / "sluicegate.db")

    async def _on(self, hot: bool, work: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._hot if hot else self._bulk
        assert conn is not None, "the store is not open"
        loop = asyncio.get_running_loop()
        if hot:
            return await loop.run_in_executor(self._hot_thread, work, conn)
        return await loop.run_in_executor(self._bulk_thread, self._locked, work, conn)

    def _locked(self, work: Callable[[sqlite3.Connection], T], conn: sqlite3.Connection) -> T:
        with self._bulk_lock:
            return work(conn)

    def execute(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        """One statement, blocking: for callers on their own thread (`asyncio.to_thread`), such as
        the Responses store. Never call it on the event loop."""
        conn = self._open_bulk()
        with self._bulk_lock:
            rows: list[tuple[object, ...]] = conn.execute(sql, params).fetchall()
            return rows

    def _open_bulk(self) -> sqlite3.Connection:
        """The bulk connection, connected and migrated on first use."""
        with self._bulk_lock:
            if self._bulk is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                conn = _connect(self.path)
                _owner_only(self.path)
                _migrate(conn)
                self._bulk = conn
            return self._bulk

    async def open(self) -> None:
        def connect() -> None:
            self._open_bulk()
            self._hot = _connect(self.path)
            self._loop = _connect(self.path)
            self._loop.execute("PRAGMA busy_timeout=0")  # locked: fail at once, the bulk thread waits
            self._loop.execute("PRAGMA wal_autocheckpoint=0")  # its checkpoints: see `_checkpoint`

        await asyncio.get_running_loop().run_in_executor(self._bulk_thread, connect)

    async def ping(self) -> None:
        await self._on(True, lambda c: c.execute("SELECT 1").fetchall())

    async def close(self) -> None:
        if self._loop is not None:
            await asyncio.get_running_loop().run_in_executor(self._bulk_thread, self._loop.close)
            self._loop = None
        for conn, thread in ((self._hot, self._hot_thread), (self._bulk, self._bulk_thread)):
            if conn is not None:
                await asyncio.get_running_loop().run_in_executor(thread, conn.close)
            thread.shutdown(wait=True)
        self._hot = self._bulk = None

    async def create_key(self, key: KeyRecord, key_hash: str) -> None:
        params = sql.key_insert_params(key, key_hash)
        await self._on(False, lambda c: c.execute(sql.qmarks(sql.KEY_INSERT), params))

    async def load_keys(self) -> list[tuple[str, KeyRecord]]:
        rows = await self._on(True, lambda c: c.execute(f"SELECT key_hash, {sql.KEY_COLUMNS} FROM api_keys").fetchall())
        return [(str(row[0]), sql.key_from_row(row[1:])) for row in rows]

    async def keys_version(self) -> tuple[int, float]:
        row = await self._on(True, lambda c: c.execute(sql.KEYS_VERSION).fetchone())
        return int(row[0]), float(row[1] or 0)

    async def get_key(self, ref: str) -> KeyRecord | None:
        query = sql.qmarks(sql.KEY_GET)
        row = await self._on(False, lambda c: c.execute(query, (ref,)).fetchone())
        return sql.key_from_row(row) if row else None

    async def update_key(self, key_id: str, changes: dict[str, Any]) -> KeyRecord | None:
        query, params = sql.key_update(key_id, changes, "?")

        def update(conn: sqlite3.Connection) -> tuple[Any, ...] | None:
            row: tuple[Any, ...] | None = conn.execute(query, params).fetchone()
            return row

        row = await self._on(False, update)
        return sql.key_from_row(row) if row else None

    async def reserve(self, key_id: str, reservation_id: str, amount_nanos: int, now: float) -> Reservation:
        (answer,) = await self.reserve_many([(key_id, reservation_id, amount_nanos, now)])
        return answer

    async def reserve_many(self, items: Sequence[ReservationAsk]) -> list[Reservation]:
        def reserve(conn: sqlite3.Connection) -> list[Reservation]:
            answers: list[Reservation] = []
            with _transaction(conn):
                for key_id, reservation_id, amount_nanos, now in items:
                    row = conn.execute(sql.qmarks(sql.RESERVE), (key_id, amount_nanos)).fetchone()
                    if row is None:
                        balance = conn.execute(sql.qmarks(sql.BALANCE), (key_id,)).fetchone()
                        answers.append(
                            Reservation(False, int(balance[0]) if balance and balance[0] is not None else 0)
                        )
                        continue
                    conn.execute(
                        sql.qmarks(sql.RESERVATION_INSERT),
                        (reservation_id, key_id, amount_nanos, now, self.instance_id),
                    )
                    answers.append(Reservation(True, int(row[0]) if row[0] is not None else 0))
            return answers

        return await self._on(True, reserve)

    async def settle(self, records: Sequence[LedgerRecord], releases: Sequence[str] = ()) -> None:
        """One batch in one transaction, written on the event loop when SQLite's write lock is free.

        Under load the loop holds the GIL nearly all the time, and the sqlite3 module lets go of
        it around every statement it steps (a row, with `executemany`): a writer thread and the
        loop then hand the GIL back and forth hundreds of times per batch, each time a forced
        switch (a futex wake-up and a context switch on both sides), which cost more CPU per
        request than the same writes done on the loop (bench/results/levers.md, lever H). So
        the loop writes, on a connection with no busy timeout and no
        automatic checkpoint: it never waits. When another process or connection holds the lock,
        the loop tries again every few ms (its own tasks run meanwhile), and after
        `LOOP_PATIENCE_S` the batch goes to the bulk thread, which waits for the lock as before;
        checkpoints (an fsync) run on that thread too."""
        await self._write(functools.partial(_settle, list(records), list(releases)))

    async def open_requests(self, rows: Sequence[OpenRow]) -> None:
        """Admitted requests' open rows, written like a ledger batch (on the loop when the write
        lock is free), committed before their upstream calls begin."""
        await self._write(functools.partial(_open, rows))

    async def _write(self, write: Callable[[sqlite3.Connection], None]) -> None:
        conn = self._loop
        # Another worker's batch holds the lock for a few ms: try again shortly rather than hand
        # this batch to the thread, whose GIL hand-offs would make it hold the lock far longer
        # and push the other workers' batches to their threads in turn.
        deadline = time.monotonic() + LOOP_PATIENCE_S
        while conn is not None:
            try:
                write(conn)
            except sqlite3.OperationalError as exc:
                if not _locked_out(exc):
                    raise
                if time.monotonic() >= deadline:
                    break
                await asyncio.sleep(LOOP_RETRY_S)
            else:
                await self._checkpoint()
                return
        await self._on(False, write)

    async def _checkpoint(self) -> None:
        """Fold the WAL back into the database file about once a second (the loop's connection
        does not: a checkpoint ends in an fsync)."""
        now = time.monotonic()
        if now - self._checkpointed < CHECKPOINT_S:
            return
        self._checkpointed = now
        try:
            await self._on(False, lambda c: c.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall())
        except sqlite3.Error as exc:  # the batch is committed: failing it now would have it written twice
            log.warning("checkpointing the SQLite WAL failed (the next one tries again): %r", exc)

    async def record_progress(self, rows: Sequence[tuple[str, bytes]]) -> None:
        """New records for open rows (the tokens produced so far); a row already closed is left alone."""
        await self._write(functools.partial(_progress, list(rows)))

    async def register_instance(self, instance_id: str, host: str, pid: int, pid_start: str) -> None:
        now = time.time()
        params = (instance_id, host, pid, pid_start, now, now)
        await self._on(False, lambda c: c.execute(sql.qmarks(sql.INSTANCE_INSERT), params))

    async def heartbeat(self, instance_id: str) -> bool:
        query, params = sql.qmarks(sql.INSTANCE_BEAT), (instance_id, time.time())
        return bool(await self._on(False, lambda c: c.execute(query, params).fetchall()))

    async def instances(self) -> list[InstanceRow]:
        now = time.time()
        rows = await self._on(False, lambda c: c.execute(sql.INSTANCES).fetchall())
        return [InstanceRow(str(i), str(h), int(p), str(s), now - float(b)) for i, h, p, s, b in rows]

    async def reap_instance(self, instance_id: str) -> tuple[int, int]:
        return await self._on(False, functools.partial(_reap, instance_id))

    async def reap_open(self, blobs: Sequence[bytes]) -> int:
        return await self._on(False, functools.partial(_reap_open, list(blobs)))

    async def release_expired(self, cutoff: float) -> int:
        def release(conn: sqlite3.Connection) -> int:
            with _transaction(conn):
                rows = conn.execute(sql.qmarks(sql.RESERVATIONS_EXPIRED), (cutoff,)).fetchall()
                conn.executemany(sql.qmarks(sql.SPEND), sql.spend_params({}, sql.amounts_by_key(rows)))
            return len(rows)

        return await self._on(False, release)

    async def usage(
        self,
        groups: Sequence[str],
        key_id: str | None = None,
        model: str | None = None,
        since: str | None = None,
        until: str | None = None,
    ) -> list[dict[str, Any]]:
        query, params = sql.usage_query(list(groups), key_id, model, since, until, "?")
        rows, names = await self._on(False, lambda c: (c.execute(query, params).fetchall(), sql.key_names(c)))
        return sql.usage_rows(list(groups), rows, names)

    async def recent(
        self,
        limit: int = 50,
        key_id: str | None = None,
        model: str | None = None,
        before_id: int | None = None,
    ) -> list[dict[str, Any]]:
        query, params = sql.recent_query(limit, key_id, model, before_id, "?")
        rows = await self._on(False, lambda c: c.execute(query, params).fetchall())
        return sql.recent_rows(rows)

    async def ledger_totals(self) -> dict[str, int]:
        row = await self._on(False, lambda c: c.execute(sql.LEDGER_TOTALS).fetchone())
        return {"rows": int(row[0]), "cost_nanos": int(row[1] or 0)}


OPEN_CHUNK = 500  # open rows closed per statement (SQLite's parameters per statement are bounded)
CHECKPOINT_S = 1.0
LOOP_RETRY_S = 0.005  # while another connection holds the write lock
LOOP_PATIENCE_S = 0.25  # then the bulk thread waits for it (up to its busy timeout)


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE (the write lock first, so no other writer slips in between a read and the
    write it decides), COMMIT, or ROLLBACK on any error."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _settle(records: list[LedgerRecord], releases: list[str], conn: sqlite3.Connection) -> None:
    with _transaction(conn):
        opened = [r.open_id for r in records if r.open_id]
        if opened:
            closed = {row[0] for row in _close_open(conn, opened)}
            if len(closed) < len(opened):  # reaped meanwhile (sql.unreaped)
                records = sql.unreaped(records, closed)
        _write_settlement(conn, Settlement.of(records, releases), {})


def _close_open(conn: sqlite3.Connection, open_ids: list[str]) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = []
    for start in range(0, len(open_ids), OPEN_CHUNK):
        chunk = open_ids[start : start + OPEN_CHUNK]
        query = f"DELETE FROM ledger_open WHERE id IN ({', '.join('?' * len(chunk))}) RETURNING id"
        rows += conn.execute(query, chunk).fetchall()
    return rows


def _write_settlement(conn: sqlite3.Connection, batch: Settlement, released: dict[str, int]) -> None:
    """The rows, their reservations released into the spend (plus `released`, per key), the daily sums."""
    conn.executemany(sql.qmarks(sql.LEDGER_INSERT), [r.row() for r in batch.records])
    delete = sql.qmarks(sql.RESERVATION_DELETE)
    deleted = (conn.execute(delete, (reservation_id,)).fetchone() for reservation_id in batch.reservations)
    for key_id, amount in sql.amounts_by_key(row for row in deleted if row is not None).items():
        released[key_id] = released.get(key_id, 0) + amount
    conn.executemany(sql.qmarks(sql.SPEND), sql.spend_params(batch.spend, released))
    conn.executemany(sql.qmarks(sql.DAILY_UPSERT), sql.daily_params(batch.daily))


def _open(rows: Sequence[OpenRow], conn: sqlite3.Connection) -> None:
    with _transaction(conn):
        conn.executemany(sql.qmarks(sql.OPEN_INSERT), rows)


def _progress(rows: list[tuple[str, bytes]], conn: sqlite3.Connection) -> None:
    with _transaction(conn):
        conn.executemany(sql.qmarks(sql.OPEN_PROGRESS), rows)


def _reap(instance_id: str, conn: sqlite3.Connection) -> tuple[int, int]:
    """A dead process's open rows become interrupted ledger records and its reservations are
    released, in one transaction, by whichever live process claims it first."""
    with _transaction(conn):
        if not conn.execute(sql.qmarks(sql.INSTANCE_CLAIM), (instance_id,)).fetchall():
            return 0, 0  # another process reaped it, or it stopped cleanly
        blobs = conn.execute(sql.qmarks(sql.OPEN_REAP), (instance_id,)).fetchall()
        records = _unbilled(conn, [bytes(blob) for (blob,) in blobs])
        freed = conn.execute(sql.qmarks(sql.RESERVATIONS_OF), (instance_id,)).fetchall()
        _write_settlement(conn, Settlement.of(records), sql.amounts_by_key(freed))
    return len(records), len(freed)


def _reap_open(blobs: list[bytes], conn: sqlite3.Connection) -> int:
    with _transaction(conn):
        records = _unbilled(conn, blobs)
        _write_settlement(conn, Settlement.of(records), {})
    return len(records)


def _unbilled(conn: sqlite3.Connection, blobs: list[bytes]) -> list[LedgerRecord]:
    """The interrupted records of open rows whose requests the ledger does not hold yet (by open id)."""
    records = interrupted_records(blobs)
    ids = list(records)
    for start in range(0, len(ids), OPEN_CHUNK):
        chunk = ids[start : start + OPEN_CHUNK]
        marks = ", ".join("?" * len(chunk))
        query = f"SELECT journal_id FROM ledger WHERE journal_id IN ({marks}) AND journal_id IS NOT NULL"
        for (journal_id,) in conn.execute(query, chunk).fetchall():
            records.pop(journal_id, None)
    return list(records.values())


def _use_wal(conn: sqlite3.Connection) -> None:
    """Switch a new file to WAL (a no-op once it is). Processes opening a new file together (the
    workers of `serve --workers N`) race to switch it, and SQLite answers the losers "database is
    locked" at once, without waiting its busy timeout: they try again until it is done."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if not _locked_out(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _locked_out(exc: sqlite3.OperationalError) -> bool:
    """SQLITE_BUSY or SQLITE_LOCKED: someone else holds the lock (nothing was written)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return (code & 0xFF) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)  # primary code of an extended one
    return "locked" in str(exc) or "busy" in str(exc)


def _owner_only(path: Path) -> None:
    """Keys and usage are nobody else's business: the database files are 0600."""
    for suffix in ("", "-wal", "-shm"):
        file = path.with_name(path.name + suffix)
        try:
            if file.exists() and file.stat().st_uid == os.getuid():
                file.chmod(0o600)
        except OSError:
            pass


def _migrate(conn: sqlite3.Connection) -> None:
    with _transaction(conn):
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        for number, statements in enumerate(MIGRATIONS[version:], start=version + 1):
            for statement in statements:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")
