"""Budget leases: most requests of a busy key reserve their budget in memory, not in the database.

A reservation per request costs a database transaction per request (CPU on SQLite, a round
trip on PostgreSQL; figures in bench/results/levers.md). Instead, a process reserves a *lease* for a key, an amount
worth `lease_requests` requests, in one atomic reservation like any other; then it admits that
key's requests against the lease in memory until the lease is used up or `lease_s` old.

Why the budget still holds, with any number of processes:
- A lease is an ordinary reservation: the database grants it only if spent + reserved + lease
  stays within the budget. A process admits a request only while its lease has room for the
  request's estimate, so everything admitted is covered by reservations the database granted.
- Each request's real cost goes into the spend when its ledger record is written; the lease stays
  reserved in full until every request admitted on it has been written, and is released in the
  same transaction as the last of them. Until then the spend and the lease both count (the key
  looks fuller than it is for a moment, never emptier).
- Near the end of a budget a lease would hold back what other processes need, so leases are
  only taken while the key's last known balance is many times the lease; otherwise (and when
  the database refuses the lease) each request reserves exactly its own estimate, as before.

A lease is renewed ahead: once three quarters of it are used or of its time has passed, the next
one is reserved in the background while requests go on against the old one, so a busy key's
requests do not stop for a database round trip every few hundred requests. The successor waits
until the old one is used up or past its time (closing the old one early would keep its unused part
reserved, out of every process's reach, until its requests settled). Only when a lease runs out
before its successor arrives do requests wait for it.

A process that dies leaves its lease reserved until the store's sweep releases it
(`reservation_ttl_s`), exactly like the reservation of a request it was serving.
"""

from __future__ import annotations

import functools
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sluicegate.governance.group_commit import RENEW_AT, OnePerKey
from sluicegate.store.records import KeyRecord, Reservation, ReservationAsk

LEASE_REQUESTS = 32  # a lease is worth this many requests' estimates
BALANCE_SHARE = 16  # and at most this fraction of the key's last known balance
NO_LEASE_S = 1.0  # after a refused lease, requests of that key reserve one by one for this long


class Lease:
    __slots__ = (
        "available",
        "closed",
        "expires",
        "in_flight",
        "key_id",
        "renew_below",
        "renew_from",
        "reservation_id",
    )

    def __init__(self, reservation_id: str, key_id: str, amount: int, taken: float, lease_s: float) -> None:
        self.reservation_id = reservation_id
        self.key_id = key_id
        self.available = amount  # the lease less the estimates in flight and the costs settled
        self.expires = taken + lease_s
        self.renew_below = amount * (1 - RENEW_AT)  # the successor is asked for below this
        self.renew_from = taken + lease_s * RENEW_AT  # or from this moment on
        self.in_flight = 0
        self.closed = False


@dataclass(slots=True)
class Hold:
    """A request's hold on a key's budget: on a lease, or its own reservation, or refused."""

    ok: bool
    amount: int  # the request's estimate
    balance_nanos: int = 0  # when refused: what the key had left
    lease: Lease | None = None
    reservation_id: str | None = None  # its own reservation, released with its ledger record


class BudgetLeases:
    def __init__(
        self,
        reserve: Callable[[ReservationAsk], Awaitable[Reservation]],
        release: Callable[[str], None],
        lease_s: float = 5.0,
        lease_requests: int = LEASE_REQUESTS,
    ) -> None:
        self._reserve = reserve
        self._release = release  # after the records added so far are written (LedgerWriter.release)
        self._lease_s = lease_s
        self._lease_requests = lease_requests
        self._leases: dict[str, Lease] = {}
        self._next: dict[str, Lease] = {}  # a lease renewed ahead, used once the current one is done
        self._taking: OnePerKey[bool] = OnePerKey()
        self._no_lease_until: dict[str, float] = {}
        self.taken = 0  # leases granted (the benchmark reports requests per lease)

    def try_hold(self, key: KeyRecord, amount: int) -> Hold | None:
        """The hold when the key's lease has room (nearly every request of a busy key), without
        a coroutine; None when the slow path must run."""
        lease = self._leases.get(key.id)
        if lease is None:
            return None
        now = time.monotonic()
        if now >= lease.expires or lease.available < amount:
            return None
        lease.available -= amount
        lease.in_flight += 1
        if (lease.available < lease.renew_below or now >= lease.renew_from) and key.id not in self._next:
            self._renew(key, amount, now)
        return Hold(True, amount, lease=lease)

    async def hold(self, key: KeyRecord, amount: int) -> Hold:
        while True:
            held = self.try_hold(key, amount)
            if held is not None:
                return held
            now = time.monotonic()
            lease = self._leases.get(key.id)
            if lease is not None:
                self._close(lease)  # its successor, if one was renewed ahead, takes its place
                if key.id in self._leases:
                    continue
            size = self._lease_size(key, amount, now)
            if size is None:
                break
            if not await self._taking.run(key.id, functools.partial(self._take, key.id, size)):
                break
        reservation_id = "res_" + secrets.token_hex(10)
        answer = await self._reserve((key.id, reservation_id, amount, time.time()))
        if not answer.ok:
            return Hold(False, amount, balance_nanos=answer.balance_nanos)
        return Hold(True, amount, reservation_id=reservation_id)

    def settle(self, hold: Hold, cost_nanos: int) -> None:
        """The request's record has been handed to the ledger writer: its estimate on the lease
        gives way to its real cost."""
        lease = hold.lease
        if lease is None:
            return
        lease.in_flight -= 1
        lease.available += hold.amount - cost_nanos
        if lease.closed and lease.in_flight == 0:
            self._release(lease.reservation_id)

    def expire(self) -> None:
        """Close the leases past their time (called periodically): an idle key's lease goes back."""
        now = time.monotonic()
        for lease in [lease for lease in self._leases.values() if now >= lease.expires]:
            self._close(lease)

    def close_all(self) -> None:
        for lease in [*self._leases.values(), *self._next.values()]:
            self._close(lease)

    def _close(self, lease: Lease) -> None:
        if lease.closed:
            return
        lease.closed = True
        if self._leases.get(lease.key_id) is lease:
            del self._leases[lease.key_id]
            successor = self._next.pop(lease.key_id, None)
            if successor is not None and not successor.closed:
                self._leases[lease.key_id] = successor
        elif self._next.get(lease.key_id) is lease:
            del self._next[lease.key_id]
        if lease.in_flight == 0:
            self._release(lease.reservation_id)

    def _lease_size(self, key: KeyRecord, amount: int, now: float) -> int | None:
        """A lease's amount for this key now, or None when its requests must reserve one by one."""
        if self._lease_s <= 0 or key.budget_nanos is None or now < self._no_lease_until.get(key.id, 0.0):
            return None
        size = self._lease_requests * max(1, amount)
        balance = key.budget_nanos - key.spent_nanos - key.reserved_nanos  # as last read: a hint
        return size if size * BALANCE_SHARE <= balance else None

    def _renew(self, key: KeyRecord, amount: int, now: float) -> None:
        """Ask for the key's next lease in the background (no request waits for it yet)."""
        if self._taking.busy(key.id):
            return
        size = self._lease_size(key, amount, now)
        if size is not None:
            self._taking.ahead(key.id, functools.partial(self._take, key.id, size), "renewing a budget lease")

    async def _take(self, key_id: str, size: int) -> bool:
        reservation_id = "lease_" + secrets.token_hex(10)
        answer = await self._reserve((key_id, reservation_id, size, time.time()))
        if not answer.ok:
            self._no_lease_until[key_id] = time.monotonic() + NO_LEASE_S
            return False
        self.taken += 1
        lease = Lease(reservation_id, key_id, size, time.monotonic(), self._lease_s)
        current = self._leases.get(key_id)
        if current is not None and not current.closed:
            # renewed ahead: the current lease is used to its end first (closing it now would keep
            # its unused part reserved, out of every process's reach, until its requests settle)
            previous = self._next.pop(key_id, None)
            if previous is not None:
                self._close(previous)
            self._next[key_id] = lease
        else:
            self._leases[key_id] = lease
        return True
