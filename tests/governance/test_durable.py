"""Durable admission in the store, on both backends: open rows, instances and heartbeats, and
the reap that records a dead process's requests as interrupted and frees its reservations."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import pytest

from sluicegate.governance.durable import Durability, process_start, this_host
from sluicegate.governance.keys import hash_key, new_key
from sluicegate.settings import Settings
from sluicegate.store.base import Store
from sluicegate.store.records import OPEN_FIELDS, LedgerRecord, encode_open, usd_to_nanos

ESTIMATE = usd_to_nanos(2.0)


def open_blob(record: LedgerRecord) -> bytes:
    """The open blob the gateway writes for a request in flight, from a record's fields."""
    return encode_open(tuple(getattr(record, name) for name in OPEN_FIELDS))


def admitted(key_id: str, request_id: str, open_id: str) -> LedgerRecord:
    return LedgerRecord(
        request_id=request_id,
        created_at=time.time(),
        key_id=key_id,
        door="chat_completions",
        model="m",
        stream=True,
        prompt_tokens=10,
        completion_tokens=100,
        usage_source="estimate",
        cost_nanos=ESTIMATE,
        open_id=open_id,
    )


async def _admit_three(store: Store, instance_id: str, host: str, pid: int, pid_start: str) -> str:
    """A process with three requests admitted on reservations of its own; the key's id."""
    key, secret = new_key("durable", budget_nanos=usd_to_nanos(100))
    await store.create_key(key, hash_key(secret))
    store.instance_id = instance_id
    await store.register_instance(instance_id, host, pid, pid_start)
    asks = [(key.id, f"res_{instance_id}_{i}", ESTIMATE, time.time()) for i in range(3)]
    assert all(answer.ok for answer in await store.reserve_many(asks))
    rows = [admitted(key.id, f"req_{i}", f"open_{instance_id}_{i}") for i in range(3)]
    await store.open_requests([(r.open_id or "", instance_id, r.created_at, open_blob(r)) for r in rows])
    # the first finishes normally: its record deletes its open row and releases its reservation
    done = admitted(key.id, "req_0", f"open_{instance_id}_0")
    done.status, done.usage_source, done.cost_nanos = 200, "upstream", usd_to_nanos(0.5)
    done.reservation_id = f"res_{instance_id}_0"
    await store.settle([done])
    return key.id


async def test_a_silent_process_is_reaped_its_requests_interrupted_and_its_budget_freed(store: Store) -> None:
    key_id = await _admit_three(store, "inst_dead", "another-host", 1, "1")
    live = Durability(store, timeout_s=1e-6)  # every other process's heartbeat is older than that
    await live.start()
    try:
        assert live.reaped == 2
        rows = await store.recent(key_id=key_id)
        interrupted = [r for r in rows if r["error_type"] == "interrupted"]
        assert len(rows) == 3 and len(interrupted) == 2
        assert all(r["estimated"] and r["cost_usd"] == 2.0 and r["status"] == 500 for r in interrupted)
        key = await store.get_key(key_id)
        assert key is not None
        assert key.reserved_nanos == 0
        assert key.spent_nanos == usd_to_nanos(0.5 + 2 * 2.0)
        assert (await store.ledger_totals())["cost_nanos"] == key.spent_nanos
        assert not await store.heartbeat("inst_dead")  # it learns it was taken for dead
        # A record it writes afterwards for a request already closed as interrupted is not billed twice.
        late = admitted(key_id, "req_1", "open_inst_dead_1")
        late.status, late.cost_nanos, late.reservation_id = 200, usd_to_nanos(1.0), "res_inst_dead_1"
        await store.settle([late])
        assert len(await store.recent(key_id=key_id)) == 3
        again = await store.get_key(key_id)
        assert again is not None and again.spent_nanos == key.spent_nanos and again.reserved_nanos == 0
    finally:
        await live.close()


async def test_a_process_of_this_host_whose_pid_is_gone_is_dead_at_once(store: Store) -> None:
    child = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await child.wait()  # exited and reaped: its PID names no process
    pid = child.pid
    key_id = await _admit_three(store, "inst_exited", this_host(), pid, "12345")
    live = Durability(store, timeout_s=3600)  # its heartbeat is fresh: only its PID tells
    await live.start()
    try:
        assert live.reaped == 2
        key = await store.get_key(key_id)
        assert key is not None and key.reserved_nanos == 0
    finally:
        await live.close()


async def test_live_processes_are_left_alone_and_a_clean_stop_unregisters(store: Store) -> None:
    import os

    key_id = await _admit_three(store, "inst_alive", this_host(), os.getpid(), process_start(os.getpid()))
    other = await store.get_key(key_id)
    live = Durability(store, timeout_s=3600)
    await live.start()
    try:
        assert live.reaped == 0
        assert {row.id for row in await store.instances()} == {"inst_alive", live.id}
        assert await store.get_key(key_id) == other
    finally:
        await live.close()
    assert {row.id for row in await store.instances()} == {"inst_alive"}


async def test_a_process_taken_for_dead_registers_again_and_drops_its_leases(store: Store) -> None:
    dropped: list[bool] = []
    stalled = Durability(store, timeout_s=3600, on_taken_for_dead=lambda: dropped.append(True))
    await stalled.start()
    first_id = stalled.id
    impatient = Durability(store, timeout_s=1e-6)  # takes any other process for dead
    await impatient.start()
    try:
        assert first_id not in {row.id for row in await store.instances()}
        await stalled.beat()
        assert dropped == [True]
        assert stalled.id != first_id
        assert store.instance_id == stalled.id  # its next reservations name the new instance
        assert stalled.id in {row.id for row in await store.instances()}
    finally:
        await impatient.close()
        await stalled.close()


async def test_an_interrupted_request_is_billed_the_progress_last_recorded(store: Store) -> None:
    key_id = await _admit_three(store, "inst_progressed", "another-host", 1, "1")
    progressed = admitted(key_id, "req_1", "open_inst_progressed_1")
    progressed.completion_tokens, progressed.cost_nanos = 7, usd_to_nanos(0.07)
    await store.record_progress([("open_inst_progressed_1", open_blob(progressed))])
    live = Durability(store, timeout_s=1e-6)
    await live.start()
    try:
        rows = {r["request_id"]: r for r in await store.recent(key_id=key_id)}
        assert (rows["req_1"]["completion_tokens"], rows["req_1"]["cost_usd"]) == (7, 0.07)
        assert (rows["req_2"]["completion_tokens"], rows["req_2"]["cost_usd"]) == (100, 2.0)  # its estimate
        assert rows["req_1"]["estimated"] and rows["req_1"]["error_type"] == "interrupted"
    finally:
        await live.close()


def test_a_timeout_within_two_heartbeats_is_refused_with_what_to_fix(tmp_path: Path) -> None:
    """Live processes would be taken for dead between heartbeats, their requests billed twice."""
    with pytest.raises(ValueError, match=r"instance_timeout_s \(15 s\) must be more than twice heartbeat_s \(10 s\)"):
        Settings.model_validate({"data_dir": str(tmp_path), "governance": {"heartbeat_s": 10}})
    Settings.model_validate({"data_dir": str(tmp_path), "governance": {"heartbeat_s": 10, "instance_timeout_s": 45}})
    Settings.model_validate({"data_dir": str(tmp_path), "governance": {"heartbeat_s": 10, "durable_admission": False}})
