"""The default store: one SQLite file in the data dir, migrated forward on open.

Migrations are a plain ordered list; `PRAGMA user_version` records how many have run, so a
newer gateway upgrades an older data dir and several worker processes can share the file (WAL).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

MIGRATIONS: list[str] = [
    """
    CREATE TABLE api_keys (
        id          TEXT PRIMARY KEY,
        name        TEXT NOT NULL,
        key_hash    TEXT NOT NULL UNIQUE,
        key_hint    TEXT NOT NULL,
        created_at  REAL NOT NULL,
        revoked_at  REAL
    );
    """,
    # The Responses door's kept responses (store: true); see store/responses.py.
    """
    CREATE TABLE IF NOT EXISTS responses (
        id                    TEXT PRIMARY KEY,
        key_id                TEXT NOT NULL,
        created_at            REAL NOT NULL,
        previous_response_id  TEXT,
        input_items           BLOB NOT NULL,
        response              BLOB NOT NULL
    );
    """,
]


class SQLiteStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._owner_only()
        self._migrate()

    def _owner_only(self) -> None:
        """Keys and usage are nobody else's business: the database files are 0600."""
        for suffix in ("", "-wal", "-shm"):
            file = self.path.with_name(self.path.name + suffix)
            try:
                if file.exists() and file.stat().st_uid == os.getuid():
                    file.chmod(0o600)
            except OSError:
                pass

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> SQLiteStore:
        return cls(data_dir / "sluicegate.db")

    def _migrate(self) -> None:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                (version,) = self._conn.execute("PRAGMA user_version").fetchone()
                for number, statement in enumerate(MIGRATIONS[version:], start=version + 1):
                    self._conn.execute(statement)
                    self._conn.execute(f"PRAGMA user_version = {number}")
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def execute(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def close(self) -> None:
        with self._lock:
            self._conn.close()
