"""The response cache shared by replicas through Redis (`redis:` configured).

Each replica keeps its own in-memory cache in front (a hit there costs no round trip); a miss
there asks Redis, where every replica writes what it keeps (`<prefix>cache:<key>`, expiring with
the entry's time to live). Entries are the answer's canonical events as JSON, read back into the
same event classes (never pickles: whoever can write to Redis must not run code here). Redis
being away is a miss, and a write that fails is dropped: requests never fail for the cache.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any

import orjson

from sluicegate.core import events as canonical
from sluicegate.core.cache import ResponseCache, size_of
from sluicegate.core.events import Batch, Event, LastBatch

log = logging.getLogger("sluicegate.cache")

_EVENT_TYPES: dict[str, type[Any]] = {
    cls.__name__: cls
    for cls in vars(canonical).values()
    if isinstance(cls, type) and dataclasses.is_dataclass(cls) and cls.__module__ == canonical.__name__
}


def encode_batches(batches: list[Batch]) -> bytes:
    return orjson.dumps(
        [
            {
                "last": type(batch) is LastBatch,
                "events": [[type(event).__name__, _fields(event)] for event in batch],
            }
            for batch in batches
        ]
    )


def _fields(event: Event) -> dict[str, Any]:
    return {field.name: getattr(event, field.name) for field in dataclasses.fields(event)}


def decode_batches(data: bytes) -> list[Batch]:
    """Raises ValueError (or KeyError, TypeError) on an entry this version cannot read."""
    batches: list[Batch] = []
    for item in orjson.loads(data):
        events: list[Event] = [_EVENT_TYPES[name](**fields) for name, fields in item["events"]]
        batches.append(LastBatch(events) if item["last"] else events)
    return batches


class SharedResponseCache(ResponseCache):
    def __init__(self, max_bytes: int, url: str, prefix: str, shown_as: str = "") -> None:
        """`shown_as`: the URL as logs may show it (its password masked by the caller)."""
        super().__init__(max_bytes)
        self.url = url
        self.shown_as = shown_as or "the configured URL"
        self.prefix = prefix
        self._client: Any = None
        self._writes: set[asyncio.Task[None]] = set()

    def _redis(self) -> Any:
        if self._client is None:
            import redis.asyncio as aioredis  # only when configured

            self._client = aioredis.Redis.from_url(self.url, socket_connect_timeout=2, socket_timeout=2)
        return self._client

    def _key(self, key: str) -> str:
        return f"{self.prefix}cache:{key}"

    async def fetch(self, key: str) -> list[Batch] | None:
        local = self.get(key)
        if local is not None:
            return local
        try:
            data = await self._redis().get(self._key(key))
            ttl_ms = await self._redis().pttl(self._key(key)) if data is not None else -1
        except Exception as exc:
            log.warning(
                "the response cache in Redis at %s is unreachable (%s): a miss", self.shown_as, exc
            )
            return None
        if data is None:
            return None
        try:
            batches = decode_batches(data)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("a response cache entry in Redis cannot be read (%s): a miss", exc)
            return None
        self.misses -= 1  # the local miss was a hit after all
        self.hits += 1
        if ttl_ms > 0:  # kept here too, until it expires in Redis
            super().put(key, batches, ttl_ms / 1000, size_of(batches))
        return batches

    def put(self, key: str, batches: list[Batch], ttl_s: float, size: int) -> None:
        super().put(key, batches, ttl_s, size)
        if size > self.max_bytes:
            return
        task = asyncio.get_running_loop().create_task(self._write(key, encode_batches(batches), ttl_s))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _write(self, key: str, data: bytes, ttl_s: float) -> None:
        try:
            await self._redis().set(self._key(key), data, px=max(1, int(ttl_s * 1000)))
        except Exception as exc:
            log.warning("the response cache cannot write to Redis at %s (%s)", self.shown_as, exc)

    async def close(self) -> None:
        if self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None
