"""API keys: created once, shown once, stored only as a SHA-256 hash, checked in memory.

Keys carry 256 bits of randomness, so a plain hash is enough (no salt or slow KDF). Every
process keeps the whole key table in memory (it is small) and refreshes it off the event loop
every `refresh_s` when it changed, so a valid key never waits on the database and a revoked
key stops working within `refresh_s` everywhere. An unknown secret triggers at most one
coalesced refresh per `MIN_REFRESH_S` (a key made a moment ago in another process works at
once), then is remembered in a bounded negative cache of its own: a flood of random tokens
costs neither database load nor the eviction of valid keys.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import datetime as dt
import hashlib
import logging
import secrets
import time
from collections import OrderedDict
from typing import Any

from sluicegate.errors import AuthenticationError
from sluicegate.governance.rules import RuleError
from sluicegate.store.base import Store
from sluicegate.store.records import KeyRecord

log = logging.getLogger("sluicegate.keys")
KEY_PREFIX = "sk-sg-"
ADMIN_PREFIX = "sk-sg-admin-"
ENV_ADMIN_ID = "key_admin_env"
MIN_REFRESH_S = 0.25
ApiKey = KeyRecord  # the name older code used


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", errors="surrogatepass")).hexdigest()


def new_key(name: str, admin: bool = False, **rules: Any) -> tuple[KeyRecord, str]:
    secret = (ADMIN_PREFIX if admin else KEY_PREFIX) + secrets.token_urlsafe(32)
    now = time.time()
    key = KeyRecord(
        id="key_" + secrets.token_hex(8),
        name=name,
        hint=secret[:10] + "..." + secret[-4:],
        created_at=now,
        updated_at=now,
        admin=admin,
        **rules,
    )
    return key, secret


class KeyNameError(RuleError):
    """A name another key has, or one that several keys share and so names none of them."""


def free_name(taken: set[str], wanted: str | None) -> str:
    """`wanted` if no key has it, else the first free `wanted-N` (`key-N` when none is wanted)."""
    if wanted is not None and wanted not in taken:
        return wanted
    base = wanted or "key"
    number = len(taken) + 1
    while f"{base}-{number}" in taken:
        number += 1
    return f"{base}-{number}"


def _name_taken(name: str) -> KeyNameError:
    return KeyNameError(f"a key named {name!r} exists already; choose another name")


class KeyStore:
    def __init__(
        self,
        store: Store,
        refresh_s: float = 2.0,
        negative_size: int = 10_000,
        admin_secret: str | None = None,
    ) -> None:
        self.store = store
        self._refresh_s = refresh_s
        self._negative_size = negative_size
        self._by_hash: dict[str, KeyRecord] = {}
        self._by_id: dict[str, KeyRecord] = {}
        self._negative: OrderedDict[str, float] = OrderedDict()
        self._version: tuple[int, float] | None = None
        self._last_refresh = 0.0
        self._refreshing: asyncio.Task[None] | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._env_admin: tuple[str, KeyRecord] | None = None
        if admin_secret:
            record = KeyRecord(
                id=ENV_ADMIN_ID,
                name="admin (SLUICEGATE_ADMIN_KEY)",
                hint="(env)",
                created_at=time.time(),
                admin=True,
            )
            self._env_admin = (hash_key(admin_secret), record)
        self._install([])

    # -- the in-memory table ------------------------------------------------------------------

    async def start(self) -> None:
        await self.refresh()
        self._loop_task = asyncio.get_running_loop().create_task(self._refresh_loop())

    async def close(self) -> None:
        for task in (self._loop_task, self._refreshing):
            if task is not None:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_s)
            try:
                await self._coalesced_refresh()
            except Exception:
                log.exception("refreshing the key table failed; keeping the last one")

    async def refresh(self) -> None:
        """Reload the table if a key was created or changed since the last look."""
        self._last_refresh = time.monotonic()
        version = await self.store.keys_version()
        if version == self._version:
            return
        rows = await self.store.load_keys()
        self._version = version
        self._install(rows)

    def _install(self, rows: list[tuple[str, KeyRecord]]) -> None:
        by_hash = dict(rows)
        if self._env_admin is not None:
            by_hash[self._env_admin[0]] = self._env_admin[1]
        self._by_hash = by_hash
        self._by_id = {key.id: key for key in by_hash.values()}
        self._negative.clear()

    async def _coalesced_refresh(self) -> None:
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.get_running_loop().create_task(self.refresh())
        await asyncio.shield(self._refreshing)

    def by_id(self, key_id: str | None) -> KeyRecord | None:
        return self._by_id.get(key_id) if key_id else None

    # -- checking a secret --------------------------------------------------------------------

    async def resolve(self, secret: str | None) -> KeyRecord:
        """The key behind a secret a client sent (each door finds it in its own header)."""
        digest = _digest(secret)
        key = self._by_hash.get(digest)
        if key is not None:
            return _check(key, secret or "")
        arrival = time.monotonic()
        expiry = self._negative.get(digest)
        if expiry is None or expiry <= arrival:
            try:
                await self._fresh_since(arrival)
            except Exception:
                log.exception("refreshing the key table failed")
            key = self._by_hash.get(digest)
            if key is not None:
                return _check(key, secret or "")
            self._remember_unknown(digest, time.monotonic())
        raise _unknown(secret or "")

    async def _fresh_since(self, arrival: float) -> None:
        """Wait for a look at the store that began after `arrival`: a key made elsewhere a moment
        ago is found, and however many unknown secrets arrive, the store sees at most one look
        per MIN_REFRESH_S."""
        while self._last_refresh < arrival:
            if self._refreshing is not None and not self._refreshing.done():
                await asyncio.shield(self._refreshing)
                continue
            wait = self._last_refresh + MIN_REFRESH_S - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            self._refreshing = asyncio.get_running_loop().create_task(self.refresh())

    def _remember_unknown(self, digest: str, now: float) -> None:
        if self._negative_size <= 0:
            return
        self._negative[digest] = now + self._refresh_s
        self._negative.move_to_end(digest)
        while len(self._negative) > self._negative_size:
            self._negative.popitem(last=False)

    # -- managing keys (CLI, admin API) -------------------------------------------------------

    async def create(self, name: str = "default", admin: bool = False, **rules: Any) -> tuple[KeyRecord, str]:
        """Make a key; the secret is returned here and never again."""
        key, secret = new_key(name, admin, **rules)
        digest = hash_key(secret)
        await self.store.create_key(key, digest)
        self._by_hash[digest] = key  # usable here at once; other processes find it on a miss
        self._by_id[key.id] = key
        self._version = None  # the next look reloads
        return key, secret

    async def create_named(self, wanted: str | None, admin: bool = False, **rules: Any) -> tuple[KeyRecord, str]:
        """A key an operator asked for: under `wanted`, which no other key may have, or else the
        first free `key-N`; a key that would be expired at birth is refused, never made."""
        expires_at = rules.get("expires_at")
        if expires_at is not None and expires_at <= time.time():
            when = dt.datetime.fromtimestamp(expires_at, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
            raise RuleError(f"the expiry {when} is already past; give a time in the future, or none")
        taken = {key.name for key in await self.list()}
        if wanted is not None and wanted in taken:
            raise _name_taken(wanted)
        return await self.create(free_name(taken, wanted), admin, **rules)

    async def find(self, ref: str) -> KeyRecord | None:
        """The key with this id or hint, or else the one key with this name."""
        key = await self.store.get_key(ref)
        if key is not None:
            return key
        named = [key for key in await self.list() if key.name == ref]
        if len(named) > 1:
            raise KeyNameError(f"{len(named)} keys are named {ref!r}; name the one you mean by its id")
        return named[0] if named else None

    async def update(self, ref: str, changes: dict[str, Any]) -> KeyRecord | None:
        if "name" in changes and any(
            key.name == changes["name"] and ref not in (key.id, key.hint) for key in await self.list()
        ):
            raise _name_taken(changes["name"])
        key = await self.store.update_key(ref, changes) if changes else await self.store.get_key(ref)
        self._version = None
        if key is not None:  # this process applies it at once, the others within refresh_s
            digest = next((d for d, old in self._by_hash.items() if old.id == key.id), None)
            if digest is not None:
                self._by_hash[digest] = key
                self._by_id[key.id] = key
        return key

    async def revoke(self, ref: str) -> KeyRecord | None:
        key = await self.store.get_key(ref)
        if key is None or key.revoked_at is not None:
            return None
        return await self.update(key.id, {"revoked_at": time.time()})

    async def revoke_matching(self, target: str) -> builtins.list[KeyRecord]:
        """Revoke the active keys with this id, name, hint or secret; the keys revoked."""
        digest = hash_key(target)
        found = [
            key
            for key_hash, key in await self.store.load_keys()
            if key.active and (target in (key.id, key.name, key.hint) or key_hash == digest)
        ]
        revoked = [await self.revoke(key.id) for key in found]
        return [key for key in revoked if key is not None]

    async def list(self) -> list[KeyRecord]:
        keys = [key for _, key in await self.store.load_keys()]
        return sorted(keys, key=lambda key: key.created_at)

    async def get(self, ref: str) -> KeyRecord | None:
        return await self.store.get_key(ref)


def _digest(secret: str | None) -> str:
    if not secret:
        raise AuthenticationError(
            "You didn't provide an API key. You need to provide your API key in an Authorization"
            " header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
        )
    return hash_key(secret)


def _check(key: KeyRecord, secret: str) -> KeyRecord:
    if key.revoked_at is not None:
        raise AuthenticationError(f"This API key has been revoked: {_redact(secret)}.")
    if key.expires_at is not None and key.expires_at <= time.time():
        raise AuthenticationError(
            f"This API key expired at {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(key.expires_at))}.",
            code="expired_api_key",
        )
    return key


def _unknown(secret: str) -> AuthenticationError:
    return AuthenticationError(f"Incorrect API key provided: {_redact(secret)}.")


def _redact(secret: str) -> str:
    if len(secret) <= 8:
        return "*" * len(secret)
    return secret[:3] + "*" * 6 + secret[-4:]
