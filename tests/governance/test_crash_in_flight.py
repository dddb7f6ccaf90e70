"""kill -9 with 50 streams in flight: each admitted request is in the ledger after the restart
(as `interrupted`, at its reservation's estimate), and the dead process's budget reservations
(its own and its leases) are free again within seconds, not after `reservation_ttl_s`.

On PostgreSQL a second gateway stays up beside the killed one: it is the one that notices the
death (on its next heartbeat) and frees the budget, without any restart.

`pytest tests/governance/test_crash_in_flight.py -s` prints the figures."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.governance.conftest import Backend
from tests.governance.support import DOLLAR_PER_TOKEN, PRICED, GovGateway, start
from testsupport.fault_upstream import FaultUpstream

STREAMS = 50  # half on a key near its budget (a reservation each), half on a rich key (leases)
HEARTBEAT_S = 0.5  # each heartbeat also records the tokens the streams in flight have produced
PRODUCED = 2  # "w0 w1 ": the stall fault's two words, 6 characters, 2 tokens at one per 4 characters


@pytest.fixture
def slow_upstream() -> Iterator[FaultUpstream]:
    server = FaultUpstream(default="stall:after=2,seconds=300").start()  # two tokens, then silence
    yield server
    server.stop()


def _config(upstream: FaultUpstream, backend: Backend) -> dict[str, Any]:
    entry = {"provider": "openai", "base_url": upstream.base_url, "api_key": "x", "upstream_model": "gpt-4o-mini"}
    model = {"name": PRICED, **entry, "price": {"input": 0, "output": DOLLAR_PER_TOKEN}}
    return backend.config({"models": [model], "governance": {"heartbeat_s": HEARTBEAT_S}})


async def _streams(
    url: str, secrets: list[str], receiving: list[int], stop: threading.Event, broken: list[int] | None = None
) -> None:
    """One stream per secret, each read until the gateway dies; `receiving` counts those that got
    content, `broken` those cut before `stop` was set."""
    body = {"model": PRICED, "messages": [{"role": "user", "content": "hi"}], "stream": True, "max_tokens": 1}

    async def one(http: httpx.AsyncClient, secret: str) -> None:
        counted = False
        try:
            async with http.stream("POST", url, json=body, headers={"Authorization": f"Bearer {secret}"}) as answer:
                assert answer.status_code == 200, await answer.aread()
                async for data in answer.aiter_bytes():
                    if not counted and b'"content"' in data:
                        counted = True
                        receiving.append(1)
                    if stop.is_set():
                        return
        except httpx.HTTPError:
            if broken is not None and not stop.is_set():
                broken.append(1)
            return

    limits = httpx.Limits(max_connections=STREAMS + 10)
    async with httpx.AsyncClient(timeout=httpx.Timeout(60, connect=10), limits=limits) as http:
        await asyncio.gather(*(one(http, secret) for secret in secrets))


def _in_flight(
    gov: GovGateway, secrets: list[str], broken: list[int] | None = None
) -> tuple[threading.Thread, threading.Event]:
    receiving: list[int] = []
    stop = threading.Event()
    url = gov.v1 + "/chat/completions"
    thread = threading.Thread(target=lambda: asyncio.run(_streams(url, secrets, receiving, stop, broken)), daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while len(receiving) < len(secrets) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(receiving) == len(secrets), f"only {len(receiving)} of {len(secrets)} streams got going"
    return thread, stop


def _until_free(gov: GovGateway, key_ids: list[str], rows_wanted: int, timeout_s: float) -> tuple[float, int]:
    """Seconds until no key has anything reserved and the ledger has its rows (or the timeout)."""
    began = time.monotonic()
    while True:
        reserved = sum(gov.key(key_id)["reserved_usd"] for key_id in key_ids)
        rows = sum(len(gov.rows(key_id, 0, timeout_s=0)) for key_id in key_ids)
        if (reserved == 0 and rows >= rows_wanted) or time.monotonic() - began > timeout_s:
            return time.monotonic() - began, rows


def test_kill_9_with_50_streams_in_flight_loses_no_row_and_frees_the_budget_at_once(
    backend: Backend, tmp_path: Path, slow_upstream: FaultUpstream, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(slow_upstream, backend)
    doomed = start(tmp_path / "doomed", config)
    witness = start(tmp_path / "witness", config, admin_key=doomed.admin_key) if backend.name == "postgres" else None
    try:
        near_id, near = doomed.new_key(budget_usd=60)  # 25 x $1 reserved one by one: no lease this close
        rich_id, rich = doomed.new_key(budget_usd=100_000)  # on budget leases
        thread, stop = _in_flight(doomed, [near] * (STREAMS // 2) + [rich] * (STREAMS // 2))
        time.sleep(3 * HEARTBEAT_S)  # their progress recorded
        observer = witness or doomed
        locked = sum(observer.key(key_id)["reserved_usd"] for key_id in (near_id, rich_id))
        os.kill(doomed.gateway.process.pid, signal.SIGKILL)
        killed = time.monotonic()
        doomed.gateway.process.wait(10)
        stop.set()
        if witness is None:  # SQLite: one host, so the gateway comes back on the same file
            observer = start(tmp_path / "doomed", config, admin_key=doomed.admin_key)
        seconds, _ = _until_free(observer, [near_id, rich_id], STREAMS, timeout_s=30)
        since_kill = time.monotonic() - killed
        rows = [r for key_id in (near_id, rich_id) for r in observer.rows(key_id, 0, timeout_s=0)]
        near_key, rich_key = observer.key(near_id), observer.key(rich_id)
        thread.join(15)
    finally:
        for gov in (doomed, witness):
            if gov is not None and gov.gateway.process.poll() is None:
                gov.stop()
        if witness is None and "observer" in locals() and observer is not doomed:
            observer.stop()
    interrupted = [r for r in rows if r["error_type"] == "interrupted"]
    how = "restart" if witness is None else "the other gateway's heartbeat"
    with capsys.disabled():
        print(
            f"\n[crash-in-flight/{backend.name}] kill -9 with {STREAMS} streams in flight (${locked:.0f} reserved):"
            f" {len(rows)} ledger rows ({len(interrupted)} interrupted); budget free {seconds:.1f} s after"
            f" {how} began looking ({since_kill:.1f} s after the kill); reserved now"
            f" ${near_key['reserved_usd'] + rich_key['reserved_usd']:.0f}"
        )
    assert len(interrupted) == len(rows) == STREAMS
    # billed what they had produced (the mock ignores max_tokens: 2 tokens where 1 was asked), estimated
    assert all(r["estimated"] and r["status"] == 500 for r in interrupted)
    assert {(r["completion_tokens"], r["cost_usd"]) for r in interrupted} == {(PRODUCED, PRODUCED * 1.0)}
    # free within _until_free's 30 s, not after reservation_ttl_s (an hour)
    assert near_key["reserved_usd"] == 0 and rich_key["reserved_usd"] == 0
    assert near_key["spent_usd"] == pytest.approx(PRODUCED * STREAMS // 2)
    assert rich_key["spent_usd"] == pytest.approx(PRODUCED * STREAMS // 2)


def test_a_worker_killed_under_streams_is_reaped_by_its_siblings(tmp_path: Path, slow_upstream: FaultUpstream) -> None:
    """SQLite with `--workers 2`: kill -9 of one worker (gunicorn starts another); the streams it
    served are in the ledger as interrupted and its reservations are freed, while the other
    worker's streams go on; a clean stop then settles those."""
    config = _config(slow_upstream, Backend("sqlite", tmp_path / "data"))
    config["server"] = {"workers": 2, "shutdown_timeout_s": 1}
    gov = start(tmp_path / "gw", config)
    try:
        key_id, secret = gov.new_key(budget_usd=60)  # a reservation per request
        broken: list[int] = []
        thread, stop = _in_flight(gov, [secret] * 20, broken)
        database = sqlite3.connect(tmp_path / "gw" / "sluicegate.db")
        pids = [pid for (pid,) in database.execute("SELECT pid FROM instances ORDER BY pid")]
        database.close()
        assert len(pids) == 2
        os.kill(pids[0], signal.SIGKILL)
        deadline = time.monotonic() + 30
        rows: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            rows = [r for r in gov.rows(key_id, 0, timeout_s=0) if r["error_type"] == "interrupted"]
            if broken and len(rows) >= len(broken):
                break
            time.sleep(0.2)
        reserved_alive = gov.key(key_id)["reserved_usd"]
    finally:
        gov.gateway.process.terminate()  # a clean stop: the streams end, every record is written
        gov.gateway.process.wait(30)
    stop.set()
    thread.join(15)
    assert broken, "no stream was served by the killed worker"
    assert len(rows) == len(broken)  # each stream it served, and nothing else
    assert reserved_alive == 20 - len(broken)  # its reservations freed; the others' still held
    database = sqlite3.connect(tmp_path / "gw" / "sluicegate.db")  # after the clean stop
    (reserved, spent), (count, billed) = (
        database.execute(query, (key_id,)).fetchone()
        for query in (
            "SELECT reserved_nanos, spent_nanos FROM api_keys WHERE id = ?",
            "SELECT COUNT(*), SUM(cost_nanos) FROM ledger WHERE key_id = ?",
        )
    )
    database.close()
    assert "not written" not in gov.gateway.log()  # no live worker was taken for dead
    assert (count, reserved, spent) == (20, 0, billed)
