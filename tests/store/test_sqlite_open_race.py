"""Workers of `serve --workers N` open a new SQLite file at the same moment (the Responses store
beside a PostgreSQL one, or a fresh data dir): every one of them must start."""

from __future__ import annotations

import asyncio
import multiprocessing
import sys
from pathlib import Path

import pytest

from sluicegate.store.sqlite import SQLiteStore

PROCESSES = 4
ROUNDS = 8


def _open(path: str, barrier: multiprocessing.synchronize.Barrier) -> None:
    async def main() -> None:
        store = SQLiteStore(Path(path))
        barrier.wait()
        await store.open()
        await store.close()

    try:
        asyncio.run(main())
    except Exception as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(3)


@pytest.mark.skipif(sys.platform != "linux", reason="fork start method")
def test_processes_opening_a_new_file_together_all_start(tmp_path: Path) -> None:
    # Before the fix, about one start in three of two processes failed with "database is locked":
    # SQLite answers the losers of the race to switch a new file to WAL without its busy timeout.
    context = multiprocessing.get_context("fork")
    for round_no in range(ROUNDS):
        path = tmp_path / f"round{round_no}" / "sluicegate.db"
        barrier = context.Barrier(PROCESSES)
        workers = [context.Process(target=_open, args=(str(path), barrier)) for _ in range(PROCESSES)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(60)
        assert [w.exitcode for w in workers] == [0] * PROCESSES, f"round {round_no}"
