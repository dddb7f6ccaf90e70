"""A synthetic usage ledger for ``bench.usage_page``: a million rows with skewed keys and models,
3% refusals and one model retired after the first day, bulk-loaded into SQLite (one transaction of
`executemany`) or PostgreSQL (COPY), with the daily aggregate and the keys' spend filled from it
as settlement would have kept them."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sluicegate.governance.keys import hash_key, new_key
from sluicegate.store.records import LEDGER_FIELDS, LedgerRecord
from sluicegate.store.sql import LEDGER_INSERT, qmarks

RETIRED = "retired-model"

# The daily aggregate (and the spend), filled from the ledger in one statement each.
FILL_DAILY = (
    "INSERT INTO usage_daily (day, key_id, model, requests, errors, prompt_tokens, completion_tokens,"
    " cached_tokens, reasoning_tokens, cost_nanos)"
    " SELECT day, COALESCE(key_id, ''), model, COUNT(*), SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END),"
    " SUM(prompt_tokens), SUM(completion_tokens), SUM(cached_tokens), SUM(reasoning_tokens), SUM(cost_nanos)"
    " FROM ledger GROUP BY day, COALESCE(key_id, ''), model"
)
FILL_SPEND = (
    "UPDATE api_keys SET spent_nanos = COALESCE((SELECT SUM(cost_nanos) FROM ledger"
    " WHERE ledger.key_id = api_keys.id), 0)"
)


# -- the data ---------------------------------------------------------------------------------


class Dataset:
    """Deterministic keys, models and ledger rows (ids follow time, as they do in a real ledger)."""

    def __init__(self, rows: int, days: int, keys: int, models: int, seed: int = 7) -> None:
        self.rows, self.days = rows, days
        self.now = time.time()
        self.start = self.now - days * 86400
        self.random = random.Random(seed)
        # every third key has a budget (USD 1,000 x its rank), every other one an RPM limit
        self.keys = [
            new_key(
                f"team-{i:02d}",
                budget_nanos=(i + 1) * 10**12 if i % 3 == 0 else None,
                rpm=600 if i % 2 else None,
            )
            for i in range(keys)
        ]
        self.models = [f"model-{i}" for i in range(models)]
        # USD per million tokens (input, output)
        self.prices = {m: (0.15 * (i + 1), 0.6 * (i + 1)) for i, m in enumerate(self.models)}
        self.prices[RETIRED] = (30.0, 60.0)
        self.key_weights = [1 / (i + 1) for i in range(keys)]
        self.model_weights = [1 / (i + 1) ** 0.8 for i in range(models)]

    def key_rows(self) -> Iterator[tuple[Any, str]]:
        for key, secret in self.keys:
            yield key, hash_key(secret)

    def ledger(self) -> Iterator[tuple[Any, ...]]:
        rnd = self.random
        step = (self.now - self.start) / self.rows
        key_ids = [key.id for key, _ in self.keys]
        picks_key = rnd.choices(key_ids, weights=self.key_weights, k=self.rows)
        picks_model = rnd.choices(self.models, weights=self.model_weights, k=self.rows)
        retired_until = self.start + 86400
        for i in range(self.rows):
            created = self.start + i * step
            model = RETIRED if created < retired_until and i % 50 == 0 else picks_model[i]
            roll = rnd.random()
            status = 200 if roll < 0.97 else (429 if roll < 0.98 else (402 if roll < 0.99 else 502))
            prompt = completion = 0
            ttft = total = None
            if status == 200:
                prompt = rnd.randint(20, 4000)
                completion = rnd.randint(1, 1200)
                ttft = rnd.uniform(80, 900)
                total = ttft + completion * rnd.uniform(5, 25)
            price_in, price_out = self.prices[model]
            record = LedgerRecord(
                request_id=f"req_{i:012x}",
                created_at=created,
                key_id=picks_key[i],
                door="openai",
                model=model,
                provider="openai",
                served_by=model,
                upstream_model=model,
                deployment=model,
                stream=i % 3 != 0,
                status=status,
                error_type=None if status == 200 else "error",
                error_code=None if status == 200 else str(status),
                finish_reason="stop" if status == 200 else None,
                prompt_tokens=prompt,
                completion_tokens=completion,
                usage_source="upstream" if status == 200 else "none",
                cost_nanos=round((prompt * price_in + completion * price_out) * 1000),
                ttft_ms=ttft,
                total_ms=total,
            )
            yield record.row()


# -- loading ----------------------------------------------------------------------------------


async def _create_schema(store: Any, data: Dataset) -> None:
    await store.open()
    for key, key_hash in data.key_rows():
        await store.create_key(key, key_hash)
    await store.close()


def load_sqlite(data_dir: Path, data: Dataset) -> float:
    from sluicegate.store.sqlite import SQLiteStore

    store = SQLiteStore.in_data_dir(data_dir)
    asyncio.run(_create_schema(store, data))
    started = time.perf_counter()
    conn = sqlite3.connect(store.path, isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("BEGIN")
    conn.executemany(qmarks(LEDGER_INSERT), data.ledger())
    conn.execute(FILL_DAILY)
    conn.execute(FILL_SPEND)
    conn.execute("COMMIT")
    # no ANALYZE: a gateway's SQLite file never gets one, so the planner works without statistics
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return time.perf_counter() - started


async def load_postgres(url: str, schema: str, data: Dataset) -> float:
    import asyncpg

    from sluicegate.store.postgres import PostgresStore

    await _create_schema(PostgresStore(f"{url}?schema={schema}"), data)
    started = time.perf_counter()
    conn = await asyncpg.connect(url, server_settings={"search_path": schema})
    try:
        await conn.copy_records_to_table(
            "ledger", records=data.ledger(), columns=LEDGER_FIELDS, schema_name=schema
        )
        await conn.execute(FILL_DAILY)
        await conn.execute(FILL_SPEND)
        await conn.execute("ANALYZE")  # what autovacuum does soon after a load this size
    finally:
        await conn.close()
    return time.perf_counter() - started


async def drop_schema(url: str, schema: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()
