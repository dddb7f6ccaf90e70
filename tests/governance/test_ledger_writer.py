"""The ledger writer on both backends: one transaction per tick under steady traffic, and
nothing left behind by a flush or a clean stop."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from sluicegate.governance.keys import hash_key, new_key
from sluicegate.governance.ledger import LedgerWriter
from sluicegate.store.base import Store
from sluicegate.store.records import LedgerRecord, usd_to_nanos
from tests.governance.test_store import record


class CountedSettles:
    """The store as it is, with each settle (one transaction) counted."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.batches: list[int] = []

    async def settle(self, records: Sequence[LedgerRecord], releases: Sequence[str] = ()) -> None:
        self.batches.append(len(records))
        await self.store.settle(records, releases)


async def test_steady_traffic_is_written_once_per_tick_not_batch_after_batch(store: Store) -> None:
    key, secret = new_key("steady", budget_nanos=usd_to_nanos(100))
    await store.create_key(key, hash_key(secret))
    counted = CountedSettles(store)
    writer = LedgerWriter(counted, flush_s=0.2)  # type: ignore[arg-type]
    writer.start()
    # A record every millisecond for about a second: on PostgreSQL several arrive while each
    # batch is being written, and the writer used to go straight on with those, back to back.
    added = 0
    loop = asyncio.get_running_loop()
    until = loop.time() + 1.0
    while loop.time() < until:
        writer.add(record(key.id, 3))
        added += 1
        await asyncio.sleep(0.001)
    await writer.close()
    assert sum(counted.batches) == added
    assert (await store.ledger_totals()) == {"rows": added, "cost_nanos": 3 * added}
    # 1 s of ticks every 0.2 s, the close's flush, and slack for a slow tick: not one per batch
    assert len(counted.batches) <= 9, counted.batches


async def test_a_flush_writes_everything_waiting_when_it_is_called(store: Store) -> None:
    key, secret = new_key("flush", budget_nanos=usd_to_nanos(100))
    await store.create_key(key, hash_key(secret))
    writer = LedgerWriter(store, flush_s=60, batch=7)
    for _ in range(30):
        writer.add(record(key.id, 2))
    writer.release("lease_not_held")  # due after those 30: released by the same flush
    await writer.flush()
    assert writer.pending == 0 and writer.written == 30
    assert (await store.ledger_totals()) == {"rows": 30, "cost_nanos": 60}
