"""Deployment cooldowns shared by every replica through Redis.

A replica that takes a deployment out writes `<prefix>cooldown:<model>:<deployment>` (the wall
time it comes back, expiring then) and publishes it on `<prefix>cooldowns`; every replica
listens and takes the deployment out too, and reads the keys when it starts. Requests never
wait on Redis: reads are local, writes go out in the background, and while Redis is away the
cooldowns are simply per replica. Each replica probes a deployment once when its time is up.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from sluicegate.http.urls import masked
from sluicegate.store.redis_channel import listen

if TYPE_CHECKING:
    from sluicegate.routing.health import Breaker

log = logging.getLogger("sluicegate.routing")


class SharedCooldowns:
    def __init__(self, url: str, prefix: str = "sluicegate:") -> None:
        self.url = url
        self.prefix = prefix
        self.channel = f"{prefix}cooldowns"
        self._breakers: dict[str, Breaker] = {}
        self._client: Any = None
        self._listener: asyncio.Task[None] | None = None
        self._writes: set[asyncio.Task[None]] = set()
        self._starts = 0
        self.subscribed = asyncio.Event()

    def key(self, name: str) -> str:
        return f"{self.prefix}cooldown:{name}"

    def register(self, model: str, deployment: str, breaker: Breaker) -> None:
        name = f"{model}:{deployment}"
        self._breakers[name] = breaker
        breaker.on_trip = lambda until, asked: self._publish(name, until, asked)

    async def start(self) -> None:
        """Connect, read the cooldowns in force, listen for new ones (once, however many
        routers share this store)."""
        self._starts += 1
        if self._starts > 1:
            return
        import redis.asyncio as redis  # only when configured

        self._client = redis.Redis.from_url(self.url, socket_connect_timeout=2, socket_timeout=5)
        names = list(self._breakers)
        if names:
            try:
                values = await self._client.mget([self.key(name) for name in names])
            except Exception as exc:
                log.warning(
                    "Redis at %s is unreachable (%s); cooldowns stay per replica meanwhile", masked(self.url), exc
                )
            else:
                for name, value in zip(names, values, strict=True):
                    if value is not None:
                        self._received(f"{value.decode()} {name}")
        self._listener = asyncio.get_running_loop().create_task(self._listen())

    async def close(self) -> None:
        self._starts -= 1
        if self._starts > 0 or self._client is None:
            return
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
        if self._writes:
            await asyncio.wait(self._writes, timeout=2)
        await self._client.aclose()
        self._client = None

    def _publish(self, name: str, wall_until: float, asked: bool) -> None:
        if self._client is None:
            return
        task = asyncio.get_running_loop().create_task(self._write(name, wall_until, asked))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _write(self, name: str, wall_until: float, asked: bool) -> None:
        """The key holds `<until> <asked>`; the message `<until> <asked> <model>:<deployment>`."""
        millis = int((wall_until - time.time()) * 1000)
        if millis <= 0:
            return
        value = f"{wall_until!r} {int(asked)}"
        try:
            await self._client.set(self.key(name), value, px=millis)
            await self._client.publish(self.channel, f"{value} {name}")
        except Exception as exc:
            log.warning("could not share the cooldown of %s through Redis: %s", name, exc)

    async def _listen(self) -> None:
        await listen(self._client, self.channel, self._received, "cooldown", self.subscribed)

    def _received(self, text: str) -> None:
        try:
            until, asked, name = text.split(" ", 2)
            seconds = float(until) - time.time()
            breaker = self._breakers.get(name)
            if breaker is not None and seconds > 0:
                breaker.hold(time.monotonic(), seconds, share=False, asked=asked == "1")
        except ValueError:
            log.warning("ignored a malformed cooldown message: %r", text[:200])
