"""An exact response cache: a request asked again, in the same door and format, by the same
tenant, is answered from what the first answer's provider sent, without calling it.

What is kept is the answer's canonical events in the batches they came in, so a hit is
answered in the client's own door: whole, or as a stream replaying the original chunking.
The key is the door, the request's body as the client sent it (every field: model, messages,
tools, every sampling parameter; `stream` and `stream_options` aside, so a stream and a whole
answer share an entry) and the API key's id, so no answer crosses keys. By default only
deterministic requests are kept (temperature 0 or a seed). The cache lives in this process's
memory, bounded in bytes (least recently used first out) and by each entry's time to live.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field

from sluicegate.core.events import Batch, Finish
from sluicegate.core.request import ChatRequest

HEADER = "x-sluicegate-cache"  # asked: on | off; answered: hit | miss
NOT_PART_OF_THE_KEY = ("stream", "stream_options")


class CacheConfig(BaseModel):
    """A model entry's `cache:`; its presence turns caching on for the model."""

    model_config = ConfigDict(extra="forbid")

    ttl_s: float = Field(default=3600.0, gt=0)
    deterministic_only: bool = True  # only temperature 0 or a seed, unless the request says `on`
    bill_hits: bool = False  # a hit costs what its answer cost (default: nothing)


@dataclass(slots=True)
class Entry:
    batches: list[Batch]
    expires: float
    size: int


def cache_key(door: str, tenant: str | None, chat: ChatRequest) -> str:
    body = {k: v for k, v in chat.raw.items() if k not in NOT_PART_OF_THE_KEY}
    canonical = orjson.dumps([door, tenant, chat.model, body], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()


def deterministic(chat: ChatRequest) -> bool:
    return chat.temperature == 0 or chat.seed is not None


def complete(batches: list[Batch]) -> bool:
    """An answer worth keeping: every choice finished (not cut by the client or an error)."""
    return any(type(event) is Finish for batch in batches for event in batch)


class ResponseCache:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[str, Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> list[Batch] | None:
        entry = self._entries.get(key)
        if entry is not None and entry.expires <= time.monotonic():
            self._drop(key)
            entry = None
        if entry is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry.batches

    async def fetch(self, key: str) -> list[Batch] | None:
        """`get` as the serving path asks for it: a shared cache may look further (Redis)."""
        return self.get(key)

    async def close(self) -> None:
        """Nothing to release for one process's memory."""

    def put(self, key: str, batches: list[Batch], ttl_s: float, size: int) -> None:
        if size > self.max_bytes:
            return
        if key in self._entries:
            self._drop(key)
        self._entries[key] = Entry(batches, time.monotonic() + ttl_s, size)
        self.size += size
        while self.size > self.max_bytes and self._entries:
            self._drop(next(iter(self._entries)))

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key)
        self.size -= entry.size


def size_of(batches: list[Batch]) -> int:
    """Roughly what the entry holds in memory: its text, and a little per event."""
    total = 0
    for batch in batches:
        for event in batch:
            total += 64 + len(getattr(event, "text", "") or "") + len(getattr(event, "arguments", "") or "")
    return total


async def replay(batches: list[Batch]) -> AsyncGenerator[Batch, None]:
    """A kept answer as a provider's stream: its batches in their order, each a fresh list."""
    for batch in batches:
        yield list(batch)


@dataclass(slots=True)
class Plan:
    """What the cache does for one request: look up and keep under `key`, for `ttl_s`."""

    key: str
    ttl_s: float


def plan_for(
    config: Any, asked: str | None, door: str, tenant: str | None, chat: ChatRequest
) -> Plan | None:
    """None when the request is not cached: the model entry has no `cache:` and the client
    did not ask (`x-sluicegate-cache: on`), the client said `off`, or the request is not
    deterministic while the entry keeps only those."""
    asked = (asked or "").strip().lower()
    if asked == "off":
        return None
    if config is None and asked != "on":
        return None
    if asked != "on" and config is not None and config.deterministic_only and not deterministic(chat):
        return None
    ttl = config.ttl_s if config is not None else CacheConfig().ttl_s
    return Plan(cache_key(door, tenant, chat), ttl)
