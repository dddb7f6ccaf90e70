"""The governance suite runs on both backends: SQLite (always) and PostgreSQL + Redis on
127.0.0.1 (skipped when they are unreachable, except under CI=true, where that fails).

Each test gets its own PostgreSQL schema and Redis prefix, so parallel runs never collide."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sluicegate.store.base import Store
from sluicegate.store.open import open_store

PG_BASE = "postgresql://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/0"


def _reachable(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@dataclass
class Backend:
    name: str  # "sqlite" | "postgres"
    data_dir: Path
    schema: str = ""
    prefix: str = ""

    @property
    def database_url(self) -> str | None:
        return f"{PG_BASE}?schema={self.schema}" if self.name == "postgres" else None

    @property
    def redis_url(self) -> str | None:
        return REDIS_URL if self.name == "postgres" else None

    def config(self, config: dict[str, Any]) -> dict[str, Any]:
        """A gateway config with this backend's `database` and `redis` sections."""
        config = dict(config)
        if self.name == "postgres":
            config["database"] = {"url": self.database_url}
            config["redis"] = {"url": self.redis_url, "prefix": self.prefix}
        return config

    def store(self) -> Store:
        return open_store(self.database_url, self.data_dir)


def _require_services() -> None:
    if _reachable(5432) and _reachable(6379):
        return
    if os.environ.get("CI") == "true":
        pytest.fail("PostgreSQL (5432) and Redis (6379) must run on 127.0.0.1 under CI=true")
    pytest.skip("PostgreSQL or Redis is not running on 127.0.0.1")


async def _drop(schema: str, prefix: str) -> None:
    import asyncpg
    import redis.asyncio as aioredis

    conn = await asyncpg.connect(PG_BASE)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


def make_backend(name: str, tmp_path: Path) -> Iterator[Backend]:
    if name == "sqlite":
        yield Backend("sqlite", tmp_path / "data")
        return
    _require_services()
    tag = f"sgt_{os.getpid()}_{secrets.token_hex(4)}"
    backend = Backend("postgres", tmp_path / "data", schema=tag, prefix=tag + ":")
    try:
        yield backend
    finally:
        asyncio.run(_drop(backend.schema, backend.prefix))


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    yield from make_backend(request.param, tmp_path)


@pytest.fixture
def pg_backend(tmp_path: Path) -> Iterator[Backend]:
    yield from make_backend("postgres", tmp_path)


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[Store]:
    opened = backend.store()
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()
