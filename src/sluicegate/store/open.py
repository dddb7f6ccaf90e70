"""The store a config names: PostgreSQL for a `postgresql://` database URL, else SQLite in the
data dir."""

from __future__ import annotations

from pathlib import Path

from sluicegate import extras
from sluicegate.store.base import Store


def open_store(database_url: str | None, data_dir: Path) -> Store:
    """The (not yet opened) store; `await store.open()` connects and migrates."""
    if database_url and database_url.startswith(("postgresql://", "postgres://")):
        extras.require(extras.POSTGRES, "database.url")
        from sluicegate.store.postgres import PostgresStore

        return PostgresStore(database_url)
    if database_url and database_url.startswith("sqlite:///"):
        from sluicegate.store.sqlite import SQLiteStore

        return SQLiteStore(Path(database_url.removeprefix("sqlite:///")))
    if database_url:
        raise ValueError(f"unsupported database URL {database_url!r}: use postgresql://... or sqlite:///path")
    from sluicegate.store.sqlite import SQLiteStore

    return SQLiteStore.in_data_dir(data_dir)
