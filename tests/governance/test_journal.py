"""The in-flight journal: what a file leaves open, rotation, and the reap of a dead process's
files on both backends (each request billed once, whichever copy is read first)."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import orjson
import pytest

from sluicegate.governance import journal as journal_module
from sluicegate.governance.durable import Durability, process_start, this_host
from sluicegate.governance.journal import Journal, Owner, journal_files, open_records, owner_of
from sluicegate.governance.keys import hash_key, new_key
from sluicegate.store.base import Store
from sluicegate.store.records import LedgerRecord, interrupted_record, open_fields, usd_to_nanos
from tests.governance.test_durable import ESTIMATE, admitted, open_blob


def _blob(open_id: str, tokens: int = 100) -> bytes:
    record = admitted("key", "req_" + open_id, open_id)
    record.completion_tokens = tokens
    return open_blob(record)


def _me() -> Owner:
    return Owner(this_host(), os.getpid(), process_start(os.getpid()))


def test_a_file_leaves_open_what_was_admitted_and_not_closed_with_its_last_progress(tmp_path: Path) -> None:
    journal = Journal(tmp_path, _me())
    for name in ("a", "b", "c"):
        journal.open(name, _blob(name))
    journal.progress([("b", _blob("b", tokens=7))])
    journal.close(["a"])
    journal.progress([("a", _blob("a", tokens=9))])  # closed: no longer written
    (path,) = journal_files(tmp_path)
    left = open_records(path)
    assert set(left) == {"b", "c"}
    assert open_fields(left["b"])["completion_tokens"] == 7
    assert owner_of(path) == _me()
    with path.open("ab") as handle:  # a crash in the middle of a line: that line is skipped
        handle.write(b"O " + _blob("d")[:20])
    assert set(open_records(path)) == {"b", "c"}
    assert journal.open_count == 2


def test_files_rotate_and_a_closed_out_file_is_deleted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(journal_module, "ROTATE_BYTES", 1)  # every file is full
    journal = Journal(tmp_path, _me())
    journal.open("a", _blob("a"))
    journal.open("b", _blob("b"))
    assert len(journal_files(tmp_path)) == 2
    journal.close(["a"])  # a's file is not the current one: gone
    files = journal_files(tmp_path)
    assert len(files) == 1 and set(open_records(files[0])) == {"b"}
    journal.close(["b"])  # the current file, empty now: it starts over at the next append
    journal.open("c", _blob("c"))
    assert [set(open_records(p)) for p in journal_files(tmp_path)] == [{"c"}]
    journal.close(["c"])
    assert journal.shut() == 0
    assert journal_files(tmp_path) == []


async def _key(store: Store) -> str:
    key, secret = new_key("journal", budget_nanos=usd_to_nanos(100))
    await store.create_key(key, hash_key(secret))
    return key.id


async def _dead_pid() -> int:
    child = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await child.wait()
    return child.pid


def _journal_of(folder: Path, owner: Owner, records: list[LedgerRecord]) -> None:
    journal = Journal(folder, owner)
    for record in records:
        journal.open(record.open_id or "", open_blob(record))
    for journal_file in journal.files:
        os.close(journal_file.fd)  # the process "dies": its files stay as they are


async def test_a_dead_process_journal_is_billed_once_skipping_what_the_ledger_holds(store: Store, tmp_path: Path) -> None:
    key_id = await _key(store)
    records = [admitted(key_id, f"req_j{i}", f"open_j{i}") for i in range(3)]
    _journal_of(tmp_path, Owner(this_host(), await _dead_pid(), "12345"), records)
    done = admitted(key_id, "req_j0", "open_j0")  # committed before the crash, its C line never written
    done.status, done.usage_source, done.cost_nanos = 200, "upstream", usd_to_nanos(0.5)
    done.journal_id, done.open_id = "open_j0", None  # as the hook settles it: its journal entry named
    await store.settle([done])
    live = Durability(store, timeout_s=3600, journal_dir=tmp_path)
    await live.start()
    try:
        assert live.reaped == 2
        assert [p for p in journal_files(tmp_path) if p not in {f.path for f in live.journal.files}] == []  # type: ignore[union-attr]
        rows = {r["request_id"]: r for r in await store.recent(key_id=key_id)}
        assert set(rows) == {"req_j0", "req_j1", "req_j2"}
        assert rows["req_j0"]["error_type"] is None
        assert all(rows[r]["error_type"] == "interrupted" and rows[r]["estimated"] for r in ("req_j1", "req_j2"))
        key = await store.get_key(key_id)
        assert key is not None and key.spent_nanos == usd_to_nanos(0.5) + 2 * ESTIMATE
        # the same requests' database copies, read after the file: not billed again
        store.instance_id = "inst_copy"
        await store.register_instance("inst_copy", "another-host", 1, "1")
        await store.open_requests([(r.open_id or "", "inst_copy", r.created_at, open_blob(r)) for r in records])
        impatient = Durability(store, timeout_s=1e-6)
        await impatient.start()
        await impatient.close()
        assert len(await store.recent(key_id=key_id)) == 3
        again = await store.get_key(key_id)
        assert again is not None and again.spent_nanos == key.spent_nanos
    finally:
        await live.close()


async def test_a_reused_request_id_does_not_make_an_interrupted_request_free(store: Store, tmp_path: Path) -> None:
    """A client may send the same `x-request-id` on every request: the reaper tells requests
    apart by their open ids, so one settled request does not excuse another interrupted one,
    nor does one interrupted request hide its twin."""
    key_id = await _key(store)
    settled = admitted(key_id, "req_mine", "open_r0")
    settled.status, settled.usage_source, settled.cost_nanos = 200, "upstream", usd_to_nanos(0.5)
    settled.journal_id, settled.open_id = "open_r0", None
    await store.settle([settled])
    crashed = [admitted(key_id, "req_mine", f"open_r{i}") for i in (1, 2)]
    _journal_of(tmp_path, Owner(this_host(), await _dead_pid(), "12345"), crashed)
    live = Durability(store, timeout_s=3600, journal_dir=tmp_path)
    await live.start()
    try:
        assert live.reaped == 2
        rows = await store.recent(key_id=key_id)
        assert sorted(str(r["error_type"]) for r in rows) == ["None", "interrupted", "interrupted"]
        key = await store.get_key(key_id)
        assert key is not None and key.spent_nanos == usd_to_nanos(0.5) + 2 * ESTIMATE
        assert "journal_id" not in rows[0]  # the store's own bookkeeping, not part of a usage row
    finally:
        await live.close()


async def test_a_live_process_journal_is_left_alone_and_another_host_s_only_once_stale(
    store: Store, tmp_path: Path
) -> None:
    key_id = await _key(store)
    _journal_of(tmp_path, _me(), [admitted(key_id, "req_alive", "open_alive")])
    _journal_of(tmp_path, Owner("another-host", 1, "1"), [admitted(key_id, "req_far", "open_far")])
    live = Durability(store, heartbeat_s=0.01, timeout_s=3600, journal_dir=tmp_path)
    await live.start()
    try:
        assert live.reaped == 0  # this process's own PID is alive; the other host's file is fresh
        far = next(p for p in journal_files(tmp_path) if owner_of(p) == Owner("another-host", 1, "1"))
        old = time.time() - 5 * 3600
        os.utime(far, (old, old))
        assert await live.reap_journals() == 1
        assert [r["request_id"] for r in await store.recent(key_id=key_id)] == ["req_far"]
    finally:
        await live.close()


def test_an_open_record_reads_back_as_the_interrupted_record_of_what_was_admitted() -> None:
    from sluicegate.core.exchange import Exchange
    from sluicegate.governance.hook import InFlight

    exchange = Exchange(
        request_id="req_1", door="messages", key_id="key_1", model="asked", provider="anthropic",
        served_by="entry", upstream_model="claude-x", stream=True,
    )  # fmt: skip
    exchange.deployment = "eu"
    record = interrupted_record(InFlight(exchange, 12, 300, 4_500).blob("open_x1"))
    assert (record.request_id, record.created_at, record.key_id, record.door) == ("req_1", exchange.created, "key_1", "messages")
    assert (record.model, record.provider, record.served_by) == ("asked", "anthropic", "entry")
    assert (record.upstream_model, record.deployment, record.stream) == ("claude-x", "eu", True)
    assert (record.prompt_tokens, record.completion_tokens, record.cost_nanos) == (12, 300, 4_500)
    assert (record.usage_source, record.error_type, record.journal_id, record.open_id) == ("estimate", "interrupted", "open_x1", None)


def test_an_open_record_written_by_the_version_before_arrays_is_still_billed() -> None:
    """Before open records were arrays they were the ledger record as a JSON object: a journal or a
    database copy left by that version (a crash across an upgrade) is read the same."""
    earlier = orjson.dumps(admitted("key", "req_old", "open_old"))  # the whole record, by name
    assert open_fields(earlier)["open_id"] == "open_old"
    record = interrupted_record(earlier)
    assert (record.request_id, record.completion_tokens, record.cost_nanos) == ("req_old", 100, ESTIMATE)
    assert (record.error_type, record.journal_id) == ("interrupted", "open_old")
    with pytest.raises(ValueError):
        open_fields(b'"neither"')
