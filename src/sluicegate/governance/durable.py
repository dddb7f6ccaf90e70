"""Durable admission: a crash loses no admitted request from the ledger, and a dead process's
budget comes back within seconds.

Each gateway process is an *instance* in the store: an id, where it runs (host and PID) and a
heartbeat written every `heartbeat_s`. Its budget reservations (leases included) name it. Each
request it admits gets an *open row* (the ledger record as far as it is known at admission: the
prompt estimate, the completion it was admitted for and that estimate's cost) committed before
the upstream is called, in group commits like the reservations' (the rows of the requests
admitted together go in one transaction). Each heartbeat the governance hook also records in
them the tokens the requests have produced so far. The request's ledger record deletes its open
row in the transaction that writes it.

Every live process looks at the others on each heartbeat (and once at start, before serving).
One is dead when its heartbeat is older than `instance_timeout_s` (the store's clock), or at once
when it ran on this host and its process is gone (a PID that no longer exists, or exists with a
different start time: reused). The first live process to claim a dead one, in one transaction,
turns its open rows into ledger records with error type `interrupted` (the progress last recorded,
else the admission estimate; `usage_source` "estimate") and releases its reservations into the spend. A process taken for
dead while still running (its loop stalled past the timeout) finds its instance gone at its next
heartbeat: it registers anew, and its records whose open rows were closed meanwhile are not
written twice (store: `sql.unreaped`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from sluicegate.governance.group_commit import GroupCommit
from sluicegate.store.base import Store
from sluicegate.store.records import InstanceRow, LedgerRecord, OpenRow, open_blob

log = logging.getLogger("sluicegate.governance")
SKIP_AFTER_FAILURE_S = 5.0  # after a failed write, requests go on without open rows this long


def this_host() -> str:
    """The host name and, on Linux, the PID namespace: processes in other namespaces (containers
    sharing a host name) are never judged by their PIDs, only by their heartbeats."""
    host = socket.gethostname()
    with contextlib.suppress(OSError):
        host += "/" + os.readlink("/proc/self/ns/pid")
    return host


def process_start(pid: int) -> str:
    """When the process started (clock ticks after boot, from /proc), to tell a PID reused by
    another process; "" where /proc is not there."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    fields = stat[stat.rindex(")") + 2 :].split()
    return fields[19] if fields[0] != "Z" else "zombie"  # field 22 (starttime); state Z: it has exited


def process_gone(pid: int, started: str) -> bool:
    """True only when sure: no such process, an exited one, or another that reused the PID."""
    if started and Path("/proc/self/stat").exists():
        return process_start(pid) != started
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


class Durability:
    def __init__(
        self,
        store: Store,
        heartbeat_s: float = 2.0,
        timeout_s: float = 15.0,
        on_taken_for_dead: Callable[[], None] | None = None,
    ) -> None:
        self._store = store
        self._heartbeat_s = heartbeat_s
        self._timeout_s = timeout_s
        self._on_taken_for_dead = on_taken_for_dead
        self.host = this_host()
        self.pid = os.getpid()
        self.id = ""
        self._opens: GroupCommit[OpenRow, None] = GroupCommit(self._write)
        self._skip_until = 0.0
        self._task: asyncio.Task[None] | None = None
        self.reaped = 0  # requests closed as interrupted by this process (tests, logs)

    async def start(self) -> None:
        await self._register()
        await self.reap_dead()
        self._task = asyncio.get_running_loop().create_task(self._beat())

    async def close(self) -> None:
        """After the ledger's last flush: this process's instance goes, with whatever it left open
        (nothing, after a clean flush)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        await self._opens.close()
        if self.id:
            try:
                closed, _ = await self._store.reap_instance(self.id)
            except Exception as exc:  # the others reap it once its heartbeat is stale
                log.warning("could not unregister this process from the store: %r", exc)
                return
            if closed:
                log.warning("%d requests left open at shutdown were recorded as interrupted", closed)

    async def _register(self) -> None:
        self.id = "inst_" + secrets.token_hex(8)
        self.pid = os.getpid()  # now, not when built: gunicorn's master may build the app before it forks
        self._store.instance_id = self.id
        await self._store.register_instance(self.id, self.host, self.pid, process_start(self.pid))

    async def _beat(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(self._heartbeat_s)
            try:
                await self.beat()
            except Exception as exc:
                if not failing:  # once per outage: /health and its log line follow the database's state
                    log.warning("the heartbeat to the store failed (%r); trying again every %.0f s", exc, self._heartbeat_s)
                failing = True
            else:
                failing = False

    async def beat(self) -> None:
        """One heartbeat, then a look at the others."""
        if not await self._store.heartbeat(self.id):
            log.error(
                "another gateway process took this one (%s) for dead (its heartbeat was older than"
                " governance.instance_timeout_s) and recorded its requests in flight as interrupted;"
                " registering again",
                self.id,
            )
            await self._register()
            if self._on_taken_for_dead is not None:
                self._on_taken_for_dead()  # its budget leases were released with it
        await self.reap_dead()

    def dead(self, instances: Sequence[InstanceRow]) -> list[InstanceRow]:
        return [
            row
            for row in instances
            if row.id != self.id
            and (row.silent_s > self._timeout_s or (row.host == self.host and process_gone(row.pid, row.pid_start)))
        ]

    async def reap_dead(self) -> int:
        """Close the dead processes' open requests and free their reservations; how many requests."""
        total = 0
        for row in self.dead(await self._store.instances()):
            closed, released = await self._store.reap_instance(row.id)
            if closed or released:
                log.warning(
                    "gateway process %s (pid %d on %s) is gone: recorded its %d requests in flight as"
                    " interrupted and released its %d budget reservations",
                    row.id,
                    row.pid,
                    row.host,
                    closed,
                    released,
                )
            total += closed
        self.reaped += total
        return total

    async def open(self, record: LedgerRecord) -> str | None:
        """Commit the admitted request's open row before its upstream call; its id, or None when
        the store cannot take it now (the request goes on; a crash would lose its record)."""
        if time.monotonic() < self._skip_until:
            return None
        open_id = "open_" + secrets.token_hex(10)
        record.open_id = open_id
        try:
            # no timeout of its own: a write given up on could still commit, and then its open row
            # would be billed again, as interrupted, beside the request's own record
            await self._opens.submit((open_id, self.id, record.created_at, open_blob(record)))
        except Exception as exc:
            record.open_id = None
            self._skip_until = time.monotonic() + SKIP_AFTER_FAILURE_S
            log.warning(
                "the store cannot take open ledger rows (%r): requests go on without them for %.0f s; a crash"
                " meanwhile would lose their records",
                exc,
                SKIP_AFTER_FAILURE_S,
            )
            return None
        return open_id

    async def _write(self, rows: Sequence[OpenRow]) -> list[None]:
        await self._store.open_requests(rows)
        return [None] * len(rows)
