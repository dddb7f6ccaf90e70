"""Which failures of a store mean "the database cannot be reached" (a 503 naming it), as opposed
to a bug (a 500)."""

from __future__ import annotations

import sqlite3


def unreachable(exc: BaseException) -> bool:
    if isinstance(exc, (OSError, TimeoutError, sqlite3.OperationalError)):
        return True  # refused, reset, unresolvable, timed out; SQLite's file locked or unreadable
    try:
        import asyncpg
    except ImportError:
        return False
    return isinstance(
        exc, (asyncpg.PostgresConnectionError, asyncpg.InterfaceError, asyncpg.CannotConnectNowError)
    ) or type(exc).__name__ in ("ConnectionDoesNotExistError", "AdminShutdownError")
