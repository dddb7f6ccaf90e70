"""The in-memory key table: rules at authentication, the bounded negative cache, and a flood of
random tokens that neither hits the store per token nor evicts a valid key."""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

import pytest

from sluicegate.errors import AuthenticationError
from sluicegate.governance.keys import MIN_REFRESH_S, KeyStore, hash_key
from sluicegate.store.base import Store


class CountingStore:
    """The real store, counting how often the key table looks at it."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.looks = 0

    async def keys_version(self) -> tuple[int, float]:
        self.looks += 1
        return await self.inner.keys_version()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def test_rules_are_checked_when_authenticating(store: Store) -> None:
    keys = KeyStore(store)
    await keys.start()
    try:
        _, live = await keys.create("live")
        _, old = await keys.create("old", expires_at=time.time() - 5)
        gone, revoked = await keys.create("gone")
        await keys.revoke(gone.id)
        assert (await keys.resolve(live)).name == "live"
        with pytest.raises(AuthenticationError) as expired:
            await keys.resolve(old)
        assert expired.value.code == "expired_api_key"
        with pytest.raises(AuthenticationError) as refused:
            await keys.resolve(revoked)
        assert refused.value.code == "invalid_api_key"
        assert "This API key has been revoked" in refused.value.message
        assert revoked not in refused.value.message
        with pytest.raises(AuthenticationError, match="didn't provide an API key"):
            await keys.resolve(None)
    finally:
        await keys.close()


async def test_a_flood_of_random_tokens_costs_few_store_looks_and_evicts_nothing(store: Store) -> None:
    counting = CountingStore(store)
    keys = KeyStore(counting, refresh_s=60, negative_size=100)  # type: ignore[arg-type]
    await keys.start()
    try:
        _, valid = await keys.create("valid")
        counting.looks = 0
        started = time.monotonic()

        async def attempt(token: str) -> None:
            with pytest.raises(AuthenticationError):
                await keys.resolve(token)

        tokens = ["sk-" + secrets.token_hex(16) for _ in range(2000)]
        for start in range(0, 2000, 400):
            await asyncio.gather(*(attempt(token) for token in tokens[start : start + 400]))
        elapsed = time.monotonic() - started
        # 2,000 unknown tokens: at most one look per MIN_REFRESH_S (and one to start with).
        assert counting.looks <= elapsed / MIN_REFRESH_S + 2
        assert counting.looks < 50
        assert len(keys._negative) == 100  # bounded
        assert (await keys.resolve(valid)).name == "valid"  # never evicted
        # A remembered unknown token is refused without a look at all.
        looks = counting.looks
        await asyncio.sleep(MIN_REFRESH_S * 2)
        remembered = [token for token in tokens if hash_key(token) in keys._negative]
        assert len(remembered) == 100
        for token in remembered:
            await attempt(token)
        assert counting.looks == looks
    finally:
        await keys.close()


async def test_a_key_made_by_another_process_works_at_once(store: Store) -> None:
    here = KeyStore(store, refresh_s=60)
    elsewhere = KeyStore(store)
    await here.start()
    try:
        _, secret = await elsewhere.create("from-the-cli")
        assert (await here.resolve(secret)).name == "from-the-cli"
        with pytest.raises(AuthenticationError):
            await here.resolve("sk-" + secrets.token_hex(16))
    finally:
        await here.close()


async def test_the_admin_key_from_the_environment_lives_in_memory_only(store: Store) -> None:
    secret = "sk-admin-" + secrets.token_hex(16)
    keys = KeyStore(store, admin_secret=secret)
    await keys.start()
    try:
        admin = await keys.resolve(secret)
        assert admin.admin
        assert all(not key.admin for key in await keys.list())  # never written to the store
    finally:
        await keys.close()
