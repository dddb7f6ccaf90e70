"""Budget leases: a busy key's requests held in memory against one reservation, the budget still
never overspent, the lease given back after the records of its requests."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

from sluicegate.governance.keys import hash_key, new_key
from sluicegate.governance.leases import BudgetLeases
from sluicegate.store.base import Store
from sluicegate.store.records import KeyRecord, Reservation, ReservationAsk
from tests.governance.conftest import Backend
from tests.governance.support import gateway_config, start
from tests.support.openai_upstream import OpenAIUpstream


class Budget:
    """A store's reservation rule in memory: grant while spent + reserved + amount <= budget."""

    def __init__(self, budget: int) -> None:
        self.budget, self.spent, self.reserved = budget, 0, 0
        self.asks: list[ReservationAsk] = []
        self.held: dict[str, int] = {}
        self.released: list[str] = []

    async def reserve(self, ask: ReservationAsk) -> Reservation:
        self.asks.append(ask)
        await asyncio.sleep(0.001)
        _, reservation_id, amount, _ = ask
        if self.spent + self.reserved + amount > self.budget:
            return Reservation(False, self.budget - self.spent - self.reserved)
        self.reserved += amount
        self.held[reservation_id] = amount
        return Reservation(True, self.budget - self.spent - self.reserved)

    def release(self, reservation_id: str) -> None:
        self.released.append(reservation_id)
        self.reserved -= self.held.pop(reservation_id)


def key_with(budget: int) -> KeyRecord:
    key, _ = new_key("k", budget_nanos=budget)
    return key


async def test_a_busy_key_takes_one_lease_for_many_requests() -> None:
    budget = Budget(10**9)
    leases = BudgetLeases(budget.reserve, budget.release, lease_s=60)
    key = key_with(10**9)
    holds = await asyncio.gather(*(leases.hold(key, 100) for _ in range(32)))
    assert all(h.ok and h.lease is holds[0].lease for h in holds)  # one lease, shared by all 32
    # three quarters in, its successor was asked for (once), in the background
    assert [ask[2] for ask in budget.asks] == [32 * 100, 32 * 100]
    another = await leases.hold(key, 100)  # the first is full: the second
    assert another.lease is not None and another.lease is not holds[0].lease and len(budget.asks) == 2
    assert budget.released == []  # the first lease still has requests in flight
    for hold in holds:
        leases.settle(hold, 40)  # each cost less than its estimate
    assert budget.released == [holds[0].lease.reservation_id]  # type: ignore[union-attr]
    leases.close_all()
    assert budget.released == [holds[0].lease.reservation_id]  # type: ignore[union-attr] # one in flight
    leases.settle(another, 100)
    assert len(budget.released) == 2 and budget.reserved == 0


class Gated(Budget):
    """Every reservation after the first waits until the test opens the gate (or fails)."""

    def __init__(self, budget: int, fail: bool = False) -> None:
        super().__init__(budget)
        self.gate = asyncio.Event()
        self.fail = fail
        self.at_gate = 0  # reservations asked for and waiting at the gate

    async def reserve(self, ask: ReservationAsk) -> Reservation:
        if self.asks:
            self.at_gate += 1
            await self.gate.wait()
            if self.fail:
                self.asks.append(ask)
                raise ConnectionError("the database is down")
        return await super().reserve(ask)


async def test_requests_go_on_against_a_lease_while_its_successor_is_reserved() -> None:
    budget = Gated(10**9)
    leases = BudgetLeases(budget.reserve, budget.release, lease_s=60)
    key = key_with(10**9)
    first = await leases.hold(key, 100)
    # the successor's reservation hangs from the 25th request on: none of the 32 waits for it
    rest = await asyncio.wait_for(asyncio.gather(*(leases.hold(key, 100) for _ in range(31))), 10)
    assert all(h.ok and h.lease is first.lease for h in rest)
    await asyncio.sleep(0)
    assert len(budget.asks) == 1 and budget.at_gate == 1  # the successor, asked for ahead, waits
    beyond = asyncio.ensure_future(leases.hold(key, 100))  # the first lease is used up: this one waits
    await asyncio.sleep(0.01)
    assert not beyond.done()
    budget.gate.set()
    second = await asyncio.wait_for(beyond, 10)
    assert second.ok and second.lease is not None and second.lease is not first.lease
    assert [ask[2] for ask in budget.asks] == [3200, 3200]  # the waiting request joined the renewal


async def test_a_failed_renewal_is_asked_for_again_when_the_lease_runs_out(caplog: pytest.LogCaptureFixture) -> None:
    budget = Gated(10**9, fail=True)
    leases = BudgetLeases(budget.reserve, budget.release, lease_s=60)
    key = key_with(10**9)
    holds = [await leases.hold(key, 100) for _ in range(32)]
    budget.gate.set()
    await asyncio.sleep(0.01)  # the renewal fails in the background: logged, nobody was waiting
    assert all(h.ok for h in holds) and "renewing a budget lease failed" in caplog.text
    budget.fail = False
    again = await leases.hold(key, 100)
    assert again.ok and again.lease is not None and again.lease is not holds[0].lease
    assert len(budget.asks) == 3  # the first lease, the failed renewal, and this one


async def test_near_the_end_of_a_budget_each_request_reserves_its_own_estimate() -> None:
    budget = Budget(1000)
    leases = BudgetLeases(budget.reserve, budget.release, lease_s=60)
    key = key_with(1000)  # worth 10 requests of 100: far too little for a lease of 32
    holds = await asyncio.gather(*(leases.hold(key, 100) for _ in range(50)))
    assert sum(h.ok for h in holds) == 10
    assert all(h.lease is None for h in holds)
    assert [ask[2] for ask in budget.asks] == [100] * 50
    refused = [h for h in holds if not h.ok]
    assert all(h.balance_nanos == 0 and h.amount == 100 for h in refused)


async def test_a_refused_lease_falls_back_to_one_reservation_per_request() -> None:
    budget = Budget(1000)  # the key table still says 10**9 (a stale hint): the store decides
    leases = BudgetLeases(budget.reserve, budget.release, lease_s=60)
    key = key_with(10**9)
    hold = await leases.hold(key, 100)
    assert hold.ok and hold.lease is None and hold.reservation_id
    assert [ask[2] for ask in budget.asks] == [3200, 100]
    await leases.hold(key, 100)
    assert [ask[2] for ask in budget.asks] == [3200, 100, 100]  # no second try for a while


async def test_an_idle_lease_expires_and_goes_back() -> None:
    budget = Budget(10**9)
    leases = BudgetLeases(budget.reserve, budget.release, lease_s=0.05)
    key = key_with(10**9)
    hold = await leases.hold(key, 100)
    leases.settle(hold, 100)
    leases.expire()
    assert budget.released == []
    await asyncio.sleep(0.06)
    leases.expire()
    assert budget.released == [hold.lease.reservation_id]  # type: ignore[union-attr]
    assert budget.reserved == 0


async def test_no_leases_when_lease_s_is_zero() -> None:
    budget = Budget(10**9)
    leases = BudgetLeases(budget.reserve, budget.release, lease_s=0)
    holds = [await leases.hold(key_with(10**9), 100) for _ in range(3)]
    assert all(h.ok and h.lease is None for h in holds)
    assert [ask[2] for ask in budget.asks] == [100] * 3


def test_through_a_gateway_the_lease_is_held_then_given_back_at_a_clean_stop(
    backend: Backend, tmp_path: Path, upstream: OpenAIUpstream
) -> None:
    gov = start(backend.data_dir, gateway_config(upstream, backend, lease_s=60))
    try:
        key_id, secret = gov.new_key(budget_usd=100_000)

        results = gov.concurrent_chats(secret, 40, max_tokens=2)
        assert not [r for r in results if isinstance(r, BaseException)]
        rows = gov.rows(key_id, 40)
        assert len(rows) == 40
        # Every request is over and written, yet the key still holds its open lease (32 requests'
        # estimates of $2): the database counts it until the lease goes back.
        key = gov.key(key_id)
        assert key["reserved_usd"] >= 64
        assert key["spent_usd"] == sum(r["cost_usd"] for r in rows) > 0
    finally:
        gov.stop()  # a clean stop gives every lease back, after the last records

    async def after() -> tuple[int, int, dict[str, int]]:
        store: Store = backend.store()
        await store.open()
        try:
            record = await store.get_key(key_id)
            assert record is not None
            return record.reserved_nanos, record.spent_nanos, await store.ledger_totals()
        finally:
            await store.close()

    reserved, spent, totals = asyncio.run(after())
    assert reserved == 0
    assert spent == totals["cost_nanos"] > 0 and totals["rows"] >= 40


async def test_leases_of_two_processes_never_grant_more_than_the_budget(store: Store) -> None:
    """Two processes' leases come out of one database: together they stay within the budget."""
    key, secret = new_key("shared", budget_nanos=100 * 32 * 20)  # exactly 20 leases of 32 x 100
    await store.create_key(key, hash_key(secret))
    key = (await store.get_key(key.id)) or key

    async def reserve(ask: ReservationAsk) -> Reservation:
        return (await store.reserve_many([ask]))[0]

    released: list[str] = []
    processes = [BudgetLeases(reserve, released.append, lease_s=60) for _ in range(2)]
    hint = dataclasses.replace(key, budget_nanos=10**12)  # a stale key table: the store decides
    holds = await asyncio.gather(*(processes[i % 2].hold(hint, 100) for i in range(800)))
    admitted = sum(h.ok for h in holds)
    # Never more than the budget; and every nano of it is either admitted or still on a lease of
    # a process whose own requests ran out first (a lease renewed ahead that its process did not
    # need: it goes back when the lease closes), so under a slow database it is not always 640.
    unused = sum(lease.available for p in processes for lease in [*p._leases.values(), *p._next.values()])
    assert admitted <= 640
    assert admitted * 100 + unused == key.budget_nanos
    assert sum(h.lease is not None for h in holds) >= 320  # most of it on leases
    after = await store.get_key(key.id)
    assert after is not None and after.reserved_nanos == after.budget_nanos
