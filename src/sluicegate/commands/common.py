"""What the store-backed commands share: the settings, and a store opened for one command."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

from sluicegate.governance.keys import KeyStore
from sluicegate.operator import OperatorError, prepare_data_dir
from sluicegate.settings import Settings, load_settings
from sluicegate.store.base import Store
from sluicegate.store.open import open_store

T = TypeVar("T")


def settings_of(args: argparse.Namespace) -> Settings:
    return load_settings(getattr(args, "config", None), getattr(args, "data_dir", None))


def with_keys(settings: Settings, work: Callable[[KeyStore, Store], Awaitable[T]], announce: bool = False) -> T:
    """Run `work` against the store the config names (SQLite in the data dir, or PostgreSQL).
    With `announce`, say on stderr which store that is (a forgotten `--config` would otherwise
    show an empty table from a new SQLite file, silently)."""

    if not settings.database.url:
        prepare_data_dir(settings.data_dir)
    if announce:
        print(f"store: {store_label(settings)}", file=sys.stderr)

    async def run() -> T:
        store = open_store(settings.database.url, settings.data_dir)
        try:
            await store.open()
        except (OSError, ImportError) as exc:
            raise OperatorError(f"the database {_redacted(settings.database.url)} cannot be reached ({exc})") from None
        except Exception as exc:
            if type(exc).__module__.startswith("asyncpg"):
                raise OperatorError(f"the database {_redacted(settings.database.url)} refused: {exc}") from None
            raise
        try:
            return await work(KeyStore(store, admin_secret=os.environ.get("SLUICEGATE_ADMIN_KEY")), store)
        finally:
            await store.close()

    return asyncio.run(run())


def store_label(settings: Settings) -> str:
    """The store the commands read, as an operator recognises it; never a password."""
    url = settings.database.url
    if url and url.startswith(("postgresql://", "postgres://")):
        return "PostgreSQL " + _redacted(url)
    path = url.removeprefix("sqlite:///") if url and url.startswith("sqlite:///") else settings.data_dir / "sluicegate.db"
    return f"SQLite {path}"


def _redacted(url: str | None) -> str:
    """A database URL without its password."""
    if not url:
        return "(SQLite in the data dir)"
    parts = urlsplit(url)
    if parts.password:
        parts = parts._replace(netloc=parts.netloc.replace(":" + parts.password + "@", ":***@"))
    return urlunsplit(parts)
