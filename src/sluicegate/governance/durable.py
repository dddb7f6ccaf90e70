"""Durable admission: a crash loses no admitted request from the ledger, and a dead process's
budget comes back within seconds.

Each gateway process is an *instance* in the store: an id, where it runs (host and PID) and a
heartbeat written every `heartbeat_s`. Its budget reservations (leases included) name it. Each
request it admits gets an *open record* (the ledger record as far as it is known at admission:
the prompt estimate, the completion it was admitted for and that estimate's cost) appended to
the process's journal (governance/journal.py) before the upstream is called: one `write`, off
the database. Each heartbeat the governance hook records in the journal the tokens the requests
have produced so far, and copies into the database (`ledger_open`) the open records of requests
running longer than a heartbeat, so that a replica on another host can close them too. The
request's ledger record closes its journal entry once committed, and deletes its database copy
in the transaction that writes it.

Every live process looks at the others on each heartbeat (and once at start, before serving).
One is dead when its heartbeat is older than `instance_timeout_s` (the store's clock), or at once
when it ran on this host and its process is gone (a PID that no longer exists, or exists with a
different start time: reused). The first live process to claim a dead one, in one transaction,
turns its database open rows into ledger records with error type `interrupted` (the progress
last recorded, else the admission estimate; `usage_source` "estimate") and releases its
reservations into the spend. Journal files are read by the processes sharing the data
directory: a file whose owner is gone (this host: its PID; another host: the file untouched for
`STALE_JOURNAL_FACTOR` instance timeouts) has its open requests recorded the same way, skipping
every request the ledger already holds (by its open id), so nothing is billed twice whichever copy is read first.
A process taken for dead while still running (its loop stalled past the timeout) finds its
instance gone at its next heartbeat: it registers anew, and its records whose database open rows
were closed meanwhile are not written twice (store: `sql.unreaped`).
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

from sluicegate.governance.journal import Journal, Owner, journal_files, open_records, owner_of
from sluicegate.store.base import Store
from sluicegate.store.records import InstanceRow

log = logging.getLogger("sluicegate.governance")
SKIP_AFTER_FAILURE_S = 5.0  # after a failed write, requests go on without open records this long
STALE_JOURNAL_FACTOR = 4  # another host's journal untouched this many instance timeouts: its owner is gone


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
        journal_dir: Path | None = None,
    ) -> None:
        self._store = store
        self._heartbeat_s = heartbeat_s
        self._timeout_s = timeout_s
        self._on_taken_for_dead = on_taken_for_dead
        self._journal_dir = journal_dir
        self.journal: Journal | None = None
        self.host = this_host()
        self.pid = os.getpid()
        self.id = ""
        self._skip_until = 0.0
        self._prefix = secrets.token_hex(8) + "_"
        self._opened = 1 << 40  # ids of one width: 11 hex digits for the next 16 trillion
        self._task: asyncio.Task[None] | None = None
        self.reaped = 0  # requests closed as interrupted by this process (tests, logs)

    async def start(self) -> None:
        await self._register()
        if self._journal_dir is not None:
            try:
                self.journal = Journal(self._journal_dir, Owner(self.host, self.pid, process_start(self.pid)))
            except OSError as exc:
                log.error(
                    "cannot write the in-flight journal in %s (%s): requests are served, but a crash would"
                    " lose the records of those in flight; make the data directory writable",
                    self._journal_dir,
                    exc,
                )
        await self.reap_dead()
        self._task = asyncio.get_running_loop().create_task(self._beat())

    async def close(self) -> None:
        """After the ledger's last flush: this process's instance and journal go, with whatever
        they left open (nothing, after a clean flush)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        if self.journal is not None:
            left = self.journal.shut()
            if left:
                log.warning("%d requests still open at shutdown stay in the journal, for the next start to record", left)
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
        """One heartbeat (the journal to disk too), then a look at the others."""
        if self.journal is not None:
            await asyncio.to_thread(self.journal.sync)
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
        total += await self.reap_journals()
        self.reaped += total
        return total

    async def reap_journals(self) -> int:
        """Record the open requests of the journal files whose owners are gone; how many."""
        if self._journal_dir is None:
            return 0
        mine = {f.path for f in self.journal.files} if self.journal is not None else set()
        total = 0
        for path in journal_files(self._journal_dir):
            if path in mine or not self._owner_gone(path):
                continue
            blobs = open_records(path)
            closed = await self._store.reap_open(list(blobs.values())) if blobs else 0
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            if closed:
                log.warning("a gateway process that died left %d requests in flight (%s): recorded as interrupted", closed, path.name)
            total += closed
        return total

    def _owner_gone(self, path: Path) -> bool:
        owner = owner_of(path)
        if owner is not None and owner.host == self.host:
            return process_gone(owner.pid, owner.start)
        try:  # another host's (or a file cut before its first line): gone once long untouched
            untouched = time.time() - path.stat().st_mtime
        except OSError:
            return False
        return untouched > STALE_JOURNAL_FACTOR * max(self._timeout_s, self._heartbeat_s)

    def open(self, blob: Callable[[str], bytes]) -> str | None:
        """Journal an admitted request's open record (`blob` of its open id) before its upstream
        call; its open id, or None when the journal cannot take it now (the request goes on; a
        crash would lose its record)."""
        if self.journal is None or time.monotonic() < self._skip_until:
            return None
        # unique: a random prefix per process, then a count of fixed width (from 2**40), so that
        # the ledger's index of open ids is written in order
        self._opened += 1
        open_id = f"open_{self._prefix}{self._opened:x}"
        try:
            self.journal.open(open_id, blob(open_id))
        except OSError as exc:
            self._skip_until = time.monotonic() + SKIP_AFTER_FAILURE_S
            log.warning(
                "the in-flight journal cannot take open records (%r): requests go on without them for %.0f s;"
                " a crash meanwhile would lose their records",
                exc,
                SKIP_AFTER_FAILURE_S,
            )
            return None
        return open_id

    def closed(self, open_ids: list[str]) -> None:
        """Their records are committed: their journal entries are closed."""
        if self.journal is not None and open_ids:
            try:
                self.journal.close(open_ids)
            except OSError as exc:  # left open: a reaper would find their records and skip them
                log.warning("closing %d entries of the in-flight journal failed: %r", len(open_ids), exc)

    def progress(self, rows: list[tuple[str, bytes]]) -> None:
        if self.journal is not None and rows:
            try:
                self.journal.progress(rows)
            except OSError as exc:
                log.warning("recording the progress of %d requests in the journal failed: %r", len(rows), exc)
