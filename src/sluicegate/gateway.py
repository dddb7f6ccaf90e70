"""The running gateway's parts, built once per process and shared by every request."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from sluicegate.core.cache import ResponseCache
from sluicegate.core.exchange import Exchange, ExchangeHook
from sluicegate.core.request import ChatRequest
from sluicegate.core.shared_cache import SharedResponseCache
from sluicegate.errors import ServiceUnavailableError
from sluicegate.governance.hook import Governance
from sluicegate.governance.keys import KeyStore
from sluicegate.governance.limits import Limiter, MemoryLimiter, RedisLimiter
from sluicegate.http.shutdown import Shutdown
from sluicegate.http.urls import masked
from sluicegate.observability.access_log import AccessLog
from sluicegate.observability.dependencies import Dependencies, Dependency
from sluicegate.observability.metrics import Metrics
from sluicegate.observability.tracing import tracing_from_settings
from sluicegate.routing.shared import SharedCooldowns
from sluicegate.settings import Settings
from sluicegate.store.base import Store
from sluicegate.store.event_log import EventLog, MemoryEventLog
from sluicegate.store.open import open_store
from sluicegate.store.responses import ResponseStore
from sluicegate.store.sqlite import SQLiteStore
from sluicegate.store.sqlite_responses import SQLiteResponseStore
from sluicegate.wiring.registry import ModelRegistry, Route

log = logging.getLogger("sluicegate.gateway")


def response_store(store: Store) -> ResponseStore:
    """Kept responses live in the configured database, beside keys and usage: on PostgreSQL every
    gateway sharing it finds a response stored through any of them."""
    if isinstance(store, SQLiteStore):
        return SQLiteResponseStore(store)
    from sluicegate.store.postgres import PostgresStore
    from sluicegate.store.postgres_responses import PostgresResponseStore

    assert isinstance(store, PostgresStore)
    return PostgresResponseStore(store)


def event_log(settings: Settings) -> EventLog:
    """Where resumable streams keep their events: Redis when configured (any replica resumes
    them), else this process's memory."""
    streams = settings.streams
    if settings.redis.url:
        from sluicegate.store.redis_event_log import RedisEventLog

        return RedisEventLog(settings.redis.url, settings.redis.prefix, streams.ttl_s, streams.max_events)
    return MemoryEventLog(streams.ttl_s, streams.max_events, streams.max_streams)


def dependencies_of(settings: Settings, store: Store) -> Dependencies:
    """The database and, when configured, Redis, each with its background check."""
    if store.backend == "postgresql":
        database = Dependency(
            "database",
            "PostgreSQL",
            masked(settings.database.url or ""),
            "keys, budgets and the ledger cannot be read or written; the admin API answers 503",
            store.ping,
        )
    else:
        path = str(getattr(store, "path", ""))
        database = Dependency("database", "SQLite", path, "keys, budgets and the ledger are unavailable", store.ping)
    dependencies = [database]
    url = settings.redis.url
    if url:
        dependencies.append(
            Dependency(
                "redis",
                "Redis",
                masked(url),
                "keys with rpm or tpm limits are refused with 503 until it answers, and deployment"
                " cooldowns are not shared between gateways meanwhile",
                redis_ping(url),
            )
        )
    return Dependencies(dependencies)


def redis_ping(url: str) -> Callable[[], Awaitable[object]]:
    """A check of its own on one connection (made on first use, re-made by redis-py after a failure)."""
    client: Any = None

    async def ping() -> object:
        nonlocal client
        if client is None:
            import redis.asyncio as aioredis

            client = aioredis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        return await client.ping()

    return ping


def shared_cooldowns(settings: Settings) -> SharedCooldowns | None:
    url = settings.redis.url
    return SharedCooldowns(url, settings.redis.prefix) if url else None


@dataclass(frozen=True, slots=True)
class KeepAliveTiming:
    first_s: float
    interval_s: float


@dataclass
class Gateway:
    """`hooks` wrap admitted requests (governance: admit, then settle exactly once);
    `observers` see every request a door finished, refused or not (metrics, the access log,
    traces): their `admit` runs before the hooks', their `settle` for every exchange."""

    settings: Settings
    store: Store
    keys: KeyStore
    models: ModelRegistry
    responses: ResponseStore  # the Responses door's kept responses
    hooks: list[ExchangeHook] = field(default_factory=list)
    observers: list[ExchangeHook] = field(default_factory=list)
    metrics: Metrics | None = None
    shutdown: Shutdown = field(default_factory=Shutdown)
    governance: Governance | None = None
    dependencies: Dependencies = field(default_factory=lambda: Dependencies([]))
    cache: ResponseCache | None = None  # the exact response cache (core/cache.py)
    events: EventLog = field(default_factory=MemoryEventLog)  # resumable streams' events
    # work owned by the process, not by a request (background responses), by id; each has a
    # `cancel()` and is awaitable
    detached: dict[str, Any] = field(default_factory=dict)
    resumable_models: bool = False  # some model entry makes every stream resumable
    _own_id: str = field(default_factory=lambda: "proc_" + secrets.token_hex(8))
    _purger: asyncio.Task[None] | None = None
    started_at: int = field(default_factory=lambda: int(time.time()))
    _to_settle: list[Exchange] = field(default_factory=list)
    _background: set[asyncio.Task[None]] = field(default_factory=set)  # work left by gone clients
    _settler: asyncio.Task[None] | None = None

    @classmethod
    def build(cls, settings: Settings) -> Gateway:
        store = open_store(settings.database.url, settings.data_dir)
        keys = KeyStore(
            store,
            settings.server.key_cache_seconds,
            settings.governance.negative_cache,
            admin_secret=os.environ.get("SLUICEGATE_ADMIN_KEY"),
        )
        gateway = cls(
            settings=settings,
            store=store,
            keys=keys,
            models=ModelRegistry.from_configs(settings.models, shared_cooldowns(settings)),
            responses=response_store(store),
            events=event_log(settings),
        )
        gateway.dependencies = dependencies_of(settings, store)
        gateway.resumable_models = any(getattr(model, "resumable", False) for model in settings.models)
        if settings.server.cache_max_bytes:
            gateway.cache = (
                SharedResponseCache(
                    settings.server.cache_max_bytes, settings.redis.url, settings.redis.prefix, masked(settings.redis.url)
                )
                if settings.redis.url
                else ResponseCache(settings.server.cache_max_bytes)
            )
        if settings.governance.enabled:
            limiter: Limiter = (
                RedisLimiter(settings.redis.url, settings.redis.prefix) if settings.redis.url else MemoryLimiter()
            )
            entries = {model.name: model for model in settings.models}
            providers = {model.name: gateway.models.get(model.name) for model in settings.models}
            gateway.governance = Governance(
                settings.governance, store, keys, limiter, entries, providers, settings.data_dir / "inflight"
            )
            gateway.hooks.append(gateway.governance)
        if settings.server.metrics:
            gateway.metrics = Metrics()
            gateway.observers.append(gateway.metrics)
            gateway.metrics.follow(gateway.models.routers())
        gateway.observers.append(AccessLog())
        tracing = tracing_from_settings(settings.server.otel_endpoint)
        if tracing is not None:
            gateway.observers.append(tracing)
        return gateway

    @property
    def keepalive(self) -> KeepAliveTiming | None:
        server = self.settings.server
        return KeepAliveTiming(server.keepalive_first_s, server.keepalive_interval_s) if server.keepalive else None

    async def start(self) -> None:
        try:
            await self.store.open()
        except Exception as exc:  # no key can be checked without it: refuse to start, in one line
            log.debug("opening the database failed", exc_info=True)
            database = self.dependencies.items.get("database")
            label = database.label if database is not None else self.store.backend
            reason = f"{type(exc).__name__}: {exc}"
            raise ServiceUnavailableError(f"the database ({label}) cannot be opened: {reason}") from exc
        await self.dependencies.check_all()
        redis = self.dependencies.items.get("redis")
        if redis is not None and not redis.ok:
            log.warning("starting degraded: %s is unreachable; %s", redis.label, redis.what)
        self.dependencies.start()
        await self.keys.start()
        if self.governance is not None:
            await self.governance.start()
        for provider in self.models.providers():
            await provider.start()
        self._purger = asyncio.get_running_loop().create_task(self._purge_loop())
        self.events.on_cancel(self._cancel_detached)

    def _cancel_detached(self, work_id: str) -> None:
        work = self.detached.get(work_id)
        if work is not None:
            work.cancel()

    @property
    def instance_id(self) -> str:
        """This process, as the store knows it (its heartbeat row) when admission is durable."""
        durable = self.governance.durable if self.governance is not None else None
        return durable.id if durable is not None and durable.id else self._own_id

    async def instance_alive(self, instance_id: str | None) -> bool:
        """Whether a gateway process may still be working: this one is; another is dead when
        its heartbeat row is gone or stale (governance/durable.py). Without heartbeats in the
        store nothing can be known of the others: they are taken for alive."""
        if instance_id is None or instance_id == self.instance_id:
            return True
        durable = self.governance.durable if self.governance is not None else None
        if durable is None:
            return True
        rows = await self.store.instances()
        row = next((row for row in rows if row.id == instance_id), None)
        return row is not None and not durable.dead([row])

    async def _purge_loop(self) -> None:
        """Stored responses whose retention is over are removed now and then (a read skips
        them meanwhile)."""
        while True:
            try:
                removed = await self.responses.purge_expired()
                if removed:
                    log.info("removed %d stored responses past their retention", removed)
            except Exception as exc:
                log.warning("removing expired stored responses failed: %r", exc)
            await asyncio.sleep(self.settings.responses.purge_interval_s)

    async def close(self) -> None:
        """A clean stop: every finished request settled, and (the governance hook's close) its
        ledger record written, before the stores close."""
        if self._purger is not None:
            self._purger.cancel()
            with contextlib.suppress(BaseException):
                await self._purger
        await self.finish_background()
        await self.wait_settled()
        for provider in self.models.providers():
            await provider.close()
        await self.responses.close()
        await self.events.close()
        if self.cache is not None:
            await self.cache.close()
        for hook in (*self.observers, *self.hooks):
            close = getattr(hook, "close", None)
            if close is not None:
                await close()
        await self.keys.close()
        await self.dependencies.close()
        await self.store.close()

    def run_in_background(self, work: Coroutine[Any, Any, None]) -> None:
        """Work a request leaves behind (reading an answer whose client left, for its bill)."""
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def run_detached(self, work_id: str, handle: Any, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Work the process owns, not a request (a background response): found by its id in
        `detached` while it runs, waited for at shutdown like the rest of the background work."""
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        self.detached[work_id] = handle

        def done(finished: asyncio.Task[None]) -> None:
            self._background.discard(finished)
            if self.detached.get(work_id) is handle:
                del self.detached[work_id]

        task.add_done_callback(done)
        return task

    async def finish_background(self) -> None:
        """Background work may finish within the shutdown timeout; then it is ended (it watches
        `shutdown`) and settles with what it has."""
        if not self._background:
            return
        await asyncio.wait(set(self._background), timeout=self.settings.server.shutdown_timeout_s)
        self.shutdown.end()
        if self._background:
            await asyncio.wait(set(self._background))

    def route(self, chat: ChatRequest) -> Route:
        """The provider for the requested model and what its entry decides for the request
        (a wildcard's upstream model, the default completion cap); `Route.request` applies
        them to a copy, the request given is left as it is."""
        return self.models.resolve(chat.model)

    async def admit(self, exchange: Exchange) -> None:
        """Every hook's checks before the provider is called (limits, budgets); a refusal
        raises its GatewayError, and the exchange is settled all the same."""
        for observer in self.observers:
            await observer.admit(exchange)
        exchange.admitted = True
        for hook in self.hooks:
            await hook.admit(exchange)

    def settle(self, exchange: Exchange) -> None:
        """Hand the finished exchange to the observers, and to every hook if it was admitted,
        off the request path, exactly once."""
        if exchange.settled:
            return
        exchange.settled = True
        if exchange.total_s is None:
            exchange.total_s = exchange.elapsed()
        if not self.observers and not (exchange.admitted and self.hooks):
            return
        # One task settles every exchange that finished meanwhile, not a task per request.
        self._to_settle.append(exchange)
        if self._settler is None:
            self._settler = asyncio.get_running_loop().create_task(self._settle_waiting())

    async def wait_settled(self) -> None:
        """Until every finished exchange has been through the hooks (tests, shutdown)."""
        while self._settler is not None:
            await asyncio.shield(self._settler)

    async def _settle_waiting(self) -> None:
        try:
            while self._to_settle:
                waiting, self._to_settle = self._to_settle, []
                for exchange in waiting:
                    await self._settle(exchange)
        finally:
            self._settler = None

    async def _settle(self, exchange: Exchange) -> None:
        hooks = [*self.hooks, *self.observers] if exchange.admitted else self.observers
        for hook in hooks:
            try:
                await hook.settle(exchange)
            except Exception:
                log.exception("settling request %s failed in %s", exchange.request_id, type(hook).__name__)
