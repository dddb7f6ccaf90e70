"""The storage interface governance needs, whatever the database behind it.

Two implementations: `SQLiteStore` (the default, one file in the data dir) and
`PostgresStore` (asyncpg, for several processes or hosts). Every method is a coroutine that
never blocks the event loop: SQLite runs on its own threads, asyncpg is async.

The two operations that must be atomic across processes are each one statement (or one
transaction) in the database: `reserve` (check the budget and hold an amount) and `settle`
(write ledger rows, move their reservations to the spend, add the daily sums).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from sluicegate.store.records import (
    InstanceRow,
    KeyRecord,
    LedgerRecord,
    OpenRow,
    Reservation,
    ReservationAsk,
)


class Store(Protocol):
    backend: str  # "sqlite" | "postgresql"
    instance_id: str | None  # the gateway process its reservations belong to (governance/durable.py)

    async def open(self) -> None:
        """Connect and apply the migrations this version has and the database lacks."""

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """One trivial statement: raises when the database cannot be reached (/health's check)."""

    async def create_key(self, key: KeyRecord, key_hash: str) -> None: ...

    async def load_keys(self) -> list[tuple[str, KeyRecord]]:
        """Every key with its hash (the in-memory key table)."""
        ...

    async def keys_version(self) -> tuple[int, float]:
        """Changes when a key is created or its rules change (not when it spends)."""
        ...

    async def get_key(self, ref: str) -> KeyRecord | None:
        """A key by id, or by its hint."""
        ...

    async def update_key(self, key_id: str, changes: dict[str, Any]) -> KeyRecord | None:
        """Set the given fields (names of `records.KEY_UPDATABLE`); None if no such key."""
        ...

    async def reserve(self, key_id: str, reservation_id: str, amount_nanos: int, now: float) -> Reservation:
        """Hold `amount_nanos` of the key's budget if spent + reserved + amount stays within it."""
        ...

    async def reserve_many(self, items: Sequence[ReservationAsk]) -> list[Reservation]:
        """`reserve` for each item, in order, in one transaction (one round trip): each item is
        checked against the budget as the items before it left it."""
        ...

    async def settle(self, records: Sequence[LedgerRecord], releases: Sequence[str] = ()) -> None:
        """One transaction: the ledger rows, their reservations (and `releases`: budget leases
        whose requests have all been written) released into the spend, the daily aggregates."""
        ...

    async def open_requests(self, rows: Sequence[OpenRow]) -> None:
        """Admitted requests' open rows, in one transaction; `settle` deletes each with the record
        that names it (`LedgerRecord.open_id`) and drops a record whose open row is gone (reaped)."""
        ...

    async def record_progress(self, rows: Sequence[tuple[str, bytes]]) -> None:
        """Replace open rows' records (open id, record): the tokens produced so far."""
        ...

    async def register_instance(self, instance_id: str, host: str, pid: int, pid_start: str) -> None: ...

    async def heartbeat(self, instance_id: str) -> bool:
        """False when the instance is gone: another process took it for dead and reaped it."""
        ...

    async def instances(self) -> list[InstanceRow]: ...

    async def reap_instance(self, instance_id: str) -> tuple[int, int]:
        """Claim a dead process, record its open rows as interrupted and release its reservations,
        in one transaction: (requests closed, reservations released); (0, 0) if already claimed."""
        ...

    async def reap_open(self, blobs: Sequence[bytes]) -> int:
        """Record the open records of a dead process's journal as interrupted, in one transaction,
        skipping requests the ledger already holds; how many were recorded."""
        ...

    async def release_expired(self, cutoff: float) -> int:
        """Give back reservations older than `cutoff` (their process died before settling)."""
        ...

    async def usage(
        self,
        groups: Sequence[str],
        key_id: str | None = None,
        model: str | None = None,
        since: str | None = None,
        until: str | None = None,
    ) -> list[dict[str, Any]]:
        """Sums from the daily aggregate, grouped by any of "key", "model", "day"."""
        ...

    async def recent(
        self,
        limit: int = 50,
        key_id: str | None = None,
        model: str | None = None,
        before_id: int | None = None,
    ) -> list[dict[str, Any]]:
        """The newest ledger rows, newest first."""
        ...

    async def ledger_totals(self) -> dict[str, int]:
        """Row count and summed cost of the whole ledger (tests, crash accounting)."""
        ...
