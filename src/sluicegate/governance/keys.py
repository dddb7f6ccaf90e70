"""API keys: created once, shown once, stored only as a SHA-256 hash.

Keys carry 256 bits of randomness, so a plain hash is enough (no salt or slow KDF needed) and
lets a lookup be one indexed query. Lookups are cached briefly so the hot path rarely touches
the database; a revoked key stops working within `cache_seconds` in every worker process.
"""

from __future__ import annotations

import builtins
import hashlib
import secrets
import time
from dataclasses import dataclass

from sluicegate.errors import AuthenticationError
from sluicegate.store.sqlite import SQLiteStore

KEY_PREFIX = "sk-sg-"


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    name: str
    hint: str
    created_at: float
    revoked_at: float | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", errors="surrogatepass")).hexdigest()


class KeyStore:
    def __init__(self, store: SQLiteStore, cache_seconds: float = 2.0) -> None:
        self._store = store
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, ApiKey | None]] = {}

    def create(self, name: str = "default") -> tuple[ApiKey, str]:
        """Make a key; the secret is returned here and never again."""
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
        key = ApiKey(
            id="key_" + secrets.token_hex(8),
            name=name,
            hint=secret[:10] + "..." + secret[-4:],
            created_at=time.time(),
            revoked_at=None,
        )
        self._store.execute(
            "INSERT INTO api_keys (id, name, key_hash, key_hint, created_at) VALUES (?, ?, ?, ?, ?)",
            (key.id, key.name, hash_key(secret), key.hint, key.created_at),
        )
        return key, secret

    def list(self) -> list[ApiKey]:
        rows = self._store.execute(
            "SELECT id, name, key_hint, created_at, revoked_at FROM api_keys ORDER BY created_at"
        )
        return [_row_to_key(row) for row in rows]

    def count_active(self) -> int:
        rows = self._store.execute("SELECT COUNT(*) FROM api_keys WHERE revoked_at IS NULL")
        count = rows[0][0]
        return count if isinstance(count, int) else 0

    def revoke(self, target: str) -> builtins.list[str]:
        """Revoke the key with this id, name, hint or secret; the ids revoked."""
        rows = self._store.execute(
            "UPDATE api_keys SET revoked_at = ? WHERE (id = ? OR name = ? OR key_hint = ? OR key_hash = ?)"
            " AND revoked_at IS NULL RETURNING id",
            (time.time(), target, target, target, hash_key(target)),
        )
        self._cache.clear()
        return [str(row[0]) for row in rows]

    def authenticate(self, secret: str | None) -> ApiKey:
        """The key behind a secret a client sent (each door finds it in its own header)."""
        if not secret:
            raise AuthenticationError(
                "You didn't provide an API key. You need to provide your API key in an Authorization"
                " header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
            )
        key = self._lookup(secret)
        if key is None or not key.active:
            raise AuthenticationError(f"Incorrect API key provided: {_redact(secret)}.")
        return key

    def _lookup(self, secret: str) -> ApiKey | None:
        digest = hash_key(secret)
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > now:
            return cached[1]
        rows = self._store.execute(
            "SELECT id, name, key_hint, created_at, revoked_at FROM api_keys WHERE key_hash = ?",
            (digest,),
        )
        key = _row_to_key(rows[0]) if rows else None
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[digest] = (now + self._cache_seconds, key)
        return key


def _row_to_key(row: tuple[object, ...]) -> ApiKey:
    key_id, name, hint, created_at, revoked_at = row
    return ApiKey(
        id=str(key_id),
        name=str(name),
        hint=str(hint),
        created_at=float(created_at),  # type: ignore[arg-type]
        revoked_at=float(revoked_at) if revoked_at is not None else None,  # type: ignore[arg-type]
    )


def _redact(secret: str) -> str:
    if len(secret) <= 8:
        return "*" * len(secret)
    return secret[:3] + "*" * 6 + secret[-4:]
