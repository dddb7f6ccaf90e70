"""The services the gateway depends on (its database, Redis), checked in the background.

Each is checked at start and then every `CHECK_S`; `/health` and `/health/ready` read the last
answer (no round trip per probe). A change of state is logged once, naming the service and its
URL with the password masked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("sluicegate.dependencies")
CHECK_S = 5.0
CHECK_TIMEOUT_S = 3.0


@dataclass
class Dependency:
    name: str  # database | redis
    service: str  # PostgreSQL | SQLite | Redis
    url: str  # password masked
    what: str  # what depends on it, for the log line when it is down
    check: Callable[[], Awaitable[object]]
    ok: bool | None = None  # None: not checked yet
    error: str | None = None
    since: float = 0.0  # when it entered its current state

    @property
    def label(self) -> str:
        return f"{self.service} at {self.url}"

    def to_json(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "status": "unknown" if self.ok is None else ("ok" if self.ok else "down"),
            "error": self.error,
            "since": round(self.since, 3) if self.since else None,
        }


class Dependencies:
    def __init__(self, dependencies: list[Dependency], interval_s: float = CHECK_S) -> None:
        self.items = {dependency.name: dependency for dependency in dependencies}
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            await self.check_all()

    async def check_all(self) -> None:
        await asyncio.gather(*(self._check(dependency) for dependency in self.items.values()))

    async def _check(self, dependency: Dependency) -> None:
        try:
            await asyncio.wait_for(dependency.check(), CHECK_TIMEOUT_S)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            if dependency.ok is not False:
                log.error("%s is unreachable (%s): %s", dependency.label, error, dependency.what)
                dependency.since = time.time()
            dependency.ok, dependency.error = False, error
            return
        if dependency.ok is False:
            log.warning("%s is reachable again", dependency.label)
        if dependency.ok is not True:
            dependency.since = time.time()
        dependency.ok, dependency.error = True, None

    @property
    def healthy(self) -> bool:
        return all(dependency.ok is not False for dependency in self.items.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "status": "ok" if self.healthy else "degraded",
            "dependencies": {name: dependency.to_json() for name, dependency in self.items.items()},
        }
