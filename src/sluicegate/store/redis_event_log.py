"""The event log in Redis, shared by every replica: a Redis Stream per log.

`<prefix>events:<id>` holds one stream entry per write (`s`: its events' positions, `l`: their
lengths, `d`: their bytes, one after the other) and a last entry `e` when the log ends: an
answer is a few entries, not one per event. Each write is one round trip (the XADD, capped with
`MAXLEN ~ max_events` entries, pipelined with an EXPIRE of `ttl_s` on the first write, then once
every quarter of `ttl_s`, and on the last), so a log lives about `ttl_s` after its last write. A
reader pages through what is kept (XRANGE), then blocks for more (XREAD BLOCK) on a connection of
its own; each `poll_s` of silence it asks whether the writer is alive.

A cancel asked on one replica is published on `<prefix>cancels`; the replica writing the log
hears it and stops the work.

`<prefix>running:<owner>` counts an owner's running logs for every replica (`claim`): a sorted
set of log ids scored by when their claim lapses (Redis's own clock), so the claims of a replica
that died lapse `CLAIM_LEASE_S` after its last renewal instead of holding the owner's room forever.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from sluicegate.store.event_log import Alive, Entry
from sluicegate.store.redis_channel import listen

log = logging.getLogger("sluicegate.store")
PAGE = 1000  # entries per XRANGE while replaying
CLAIM_LEASE_S = 60  # a claim not renewed this long lapses (its writer renews it more often)
# KEYS[1] the owner's set; ARGV: log id, limit, lease ms. 1 if claimed (or renewed), else 0.
CLAIM_SCRIPT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local lease = tonumber(ARGV[3])
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + lease, ARGV[1])
redis.call('PEXPIRE', KEYS[1], lease)
return 1
"""


class RedisEventLog:
    def __init__(self, url: str, prefix: str = "sluicegate:", ttl_s: float = 600.0, max_events: int = 50_000) -> None:
        import redis.asyncio as redis  # only when configured

        self.prefix = prefix
        self.ttl_ms = max(1, int(ttl_s * 1000))
        self.max_events = max_events
        self.channel = f"{prefix}cancels"
        self._client: Any = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
        self._blocking: Any = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=None)
        self._on_cancel: Callable[[str], None] | None = None
        self._listener: asyncio.Task[None] | None = None
        self.operations = 0  # Redis round trips made (the benchmark reports them)
        self._expiry_set: dict[str, float] = {}  # log id -> when its TTL was last set (monotonic)
        self._claim: Any = self._client.register_script(CLAIM_SCRIPT)

    def key(self, log_id: str) -> str:
        return f"{self.prefix}events:{log_id}"

    async def append(self, log_id: str, entries: list[Entry]) -> None:
        key = self.key(log_id)
        pipe = self._client.pipeline(transaction=False)
        if entries:  # one stream entry per write: its events' positions, lengths and bytes
            fields = {
                "s": ",".join(str(seq) for seq, _ in entries),
                "l": ",".join(str(len(data)) for _, data in entries),
                "d": b"".join(data for _, data in entries),
            }
            pipe.xadd(key, fields, maxlen=self.max_events, approximate=True)
        now, last = time.monotonic(), self._expiry_set.get(log_id)
        if last is None or now - last >= self.ttl_ms / 4000:
            # the TTL is set with the first write, then renewed every quarter of it (not per write)
            self._expiry_set[log_id] = now
            pipe.pexpire(key, self.ttl_ms)
            pipe.pexpire(key + ":meta", self.ttl_ms)
        self.operations += 1
        await pipe.execute()

    async def end(self, log_id: str) -> None:
        key = self.key(log_id)
        self._expiry_set.pop(log_id, None)
        pipe = self._client.pipeline(transaction=False)
        pipe.xadd(key, {"e": 1}, maxlen=self.max_events, approximate=True)
        pipe.pexpire(key, self.ttl_ms)
        pipe.pexpire(key + ":meta", self.ttl_ms)
        self.operations += 1
        await pipe.execute()

    async def claim(self, owner: str, log_id: str, limit: int) -> bool:
        self.operations += 1
        claimed = await self._claim(keys=[f"{self.prefix}running:{owner}"], args=[log_id, limit, max(1, int(CLAIM_LEASE_S * 1000))])
        return bool(claimed)

    async def unclaim(self, owner: str, log_id: str) -> None:
        self.operations += 1
        await self._client.zrem(f"{self.prefix}running:{owner}", log_id)

    async def exists(self, log_id: str) -> bool:
        self.operations += 1
        return bool(await self._client.exists(self.key(log_id)))

    async def read(
        self, log_id: str, after: int, alive: Alive | None = None, poll_s: float = 5.0
    ) -> AsyncIterator[Entry]:
        key = self.key(log_id)
        last_id = "-"
        while True:  # what is kept
            start = last_id if last_id == "-" else "(" + last_id
            self.operations += 1
            page = await self._client.xrange(key, min=start, max="+", count=PAGE)
            for entry_id, fields in page:
                last_id = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
                if b"e" in fields:
                    return
                for entry in _unpack(fields, after):
                    yield entry
            if len(page) < PAGE:
                break
        if last_id == "-":
            self.operations += 1
            if not await self._client.exists(key, key + ":meta"):
                return  # no such log (never written, or expired)
            last_id = "0-0"  # announced (its metadata is there), its first events not yet
        while True:  # then what comes
            self.operations += 1
            got = await self._blocking.xread({key: last_id}, count=PAGE, block=max(1, int(poll_s * 1000)))
            if not got:
                if alive is not None and not await alive():
                    return
                self.operations += 1
                if not await self._client.exists(key, key + ":meta"):
                    return  # expired while nothing came
                continue
            for entry_id, fields in got[0][1]:
                last_id = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
                if b"e" in fields:
                    return
                for entry in _unpack(fields, after):
                    yield entry

    async def set_meta(self, log_id: str, meta: bytes) -> None:
        self.operations += 1
        await self._client.set(self.key(log_id) + ":meta", meta, px=self.ttl_ms)

    async def get_meta(self, log_id: str) -> bytes | None:
        self.operations += 1
        value: bytes | None = await self._client.get(self.key(log_id) + ":meta")
        return value

    async def request_cancel(self, log_id: str) -> None:
        self.operations += 1
        await self._client.publish(self.channel, log_id)

    def on_cancel(self, callback: Callable[[str], None]) -> None:
        self._on_cancel = callback
        if self._listener is None:
            self._listener = asyncio.get_running_loop().create_task(self._listen())

    async def _listen(self) -> None:
        await listen(self._blocking, self.channel, self._cancel_asked, "cancel")

    def _cancel_asked(self, log_id: str) -> None:
        if self._on_cancel is not None:
            self._on_cancel(log_id)

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
        await self._client.aclose()
        await self._blocking.aclose()


def _unpack(fields: dict[bytes, bytes], after: int) -> list[Entry]:
    """One stream entry's events after position `after`."""
    data = fields[b"d"]
    out: list[Entry] = []
    start = 0
    for seq, length in zip(fields[b"s"].split(b","), fields[b"l"].split(b","), strict=True):
        end = start + int(length)
        if int(seq) > after:
            out.append((int(seq), data[start:end]))
        start = end
    return out
