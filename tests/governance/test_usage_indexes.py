"""The usage page's queries read indexes, not the whole ledger, on both stores.

Timings live in `bench/usage_page.py` (a million rows); here only the plans are checked, so a
dropped index or a query that stops matching one fails at once on any machine.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from sluicegate.store import sql
from sluicegate.store.base import Store


async def plan(store: Store, query: str, params: tuple[Any, ...]) -> str:
    if store.backend == "sqlite":
        conn = sqlite3.connect(store.path)  # type: ignore[attr-defined]
        try:
            rows = conn.execute(f"EXPLAIN QUERY PLAN {query}", params).fetchall()
        finally:
            conn.close()
        return "\n".join(str(row[-1]) for row in rows)
    async with store.pool.acquire() as conn, conn.transaction():  # type: ignore[attr-defined]
        # an empty table is cheapest to scan whole; forbid that, so the plan shows which index
        # the query can use at all (the one a large ledger gets)
        await conn.execute("SET LOCAL enable_seqscan = off")
        rows = await conn.fetch(f"EXPLAIN {query}", *params)
    return "\n".join(str(row[0]) for row in rows)


async def test_recent_requests_of_one_model_read_the_model_index(store: Store) -> None:
    style = "?" if store.backend == "sqlite" else "$"
    query, params = sql.recent_query(50, None, "gpt-4o", None, style)
    assert "ledger_model" in await plan(store, query, params)
    query, params = sql.recent_query(50, None, "gpt-4o", 1000, style)  # the next page
    assert "ledger_model" in await plan(store, query, params)


async def test_recent_requests_of_one_key_read_the_key_index(store: Store) -> None:
    style = "?" if store.backend == "sqlite" else "$"
    query, params = sql.recent_query(50, "key_0123", None, None, style)
    assert "ledger_key" in await plan(store, query, params)


async def test_usage_sums_come_from_the_daily_aggregate(store: Store) -> None:
    style = "?" if store.backend == "sqlite" else "$"
    for groups in (["day"], ["key"], ["model"], []):
        query, params = sql.usage_query(groups, None, None, "2026-01-01", None, style)
        shown = await plan(store, query, params)
        assert "usage_daily" in shown
        assert "ledger" not in shown.replace("usage_daily", "")
