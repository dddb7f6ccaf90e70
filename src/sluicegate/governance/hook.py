"""Governance as an exchange hook: per-key rules, limits and budget before the provider is
called; the ledger record and the budget settlement after the last byte.

`admit` costs nothing for a key without limits or budget. With limits it is one limiter call
(a Redis round trip, or a dict in memory), with a budget one atomic reservation in the
database: nothing else touches storage on the request path. `settle` only computes the record
and hands it to the batched ledger writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import logging
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from sluicegate.core.events import Usage
from sluicegate.core.exchange import Exchange
from sluicegate.errors import (
    InsufficientBalanceError,
    PermissionDeniedError,
    RateLimitError,
    ServiceUnavailableError,
)
from sluicegate.governance.config import GovernanceConfig
from sluicegate.governance.durable import Durability
from sluicegate.governance.group_commit import GroupCommit
from sluicegate.governance.keys import KeyStore
from sluicegate.governance.leases import BudgetLeases, Hold
from sluicegate.governance.ledger import LedgerWriter
from sluicegate.governance.limit_slices import LimitSlices
from sluicegate.governance.limits import Decision, LimitAsk, Limiter, MemoryLimiter, RedisLimiter
from sluicegate.governance.price_book import PriceBook
from sluicegate.governance.pricing import cost_nanos, estimate_nanos
from sluicegate.governance.prompt_estimate import prompt_estimate
from sluicegate.governance.segments import split_bill
from sluicegate.governance.tokens import TokenCounter
from sluicegate.model_config.entry import DEFAULT_MAX_OUTPUT_TOKENS
from sluicegate.store.base import Store
from sluicegate.store.records import LedgerRecord, Reservation, ReservationAsk, encode_open, nanos_to_usd

log = logging.getLogger("sluicegate.governance")
T = TypeVar("T")
STATE = "governance"
SWEEP_S = 60.0


class Admission:
    __slots__ = ("hold", "key_id", "open_id", "tokens_counted")

    def __init__(self, key_id: str) -> None:
        self.key_id = key_id
        self.open_id: str | None = None  # the request's open record (governance/durable.py)
        self.hold: Hold | None = None  # the request's hold on the key's budget
        self.tokens_counted: int | None = None  # tokens the limiter counted at admission


class InFlight:
    """An admitted request's open record while it runs: what admission estimated (completion and
    cost, raised as tokens come), the tokens last recorded, and whether a copy is in the database
    (for replicas on other hosts). The rest is read from the exchange when written, so admission
    builds no ledger record for it."""

    __slots__ = ("completion", "cost", "exchange", "opened", "prompt", "recorded", "shipped")

    def __init__(self, exchange: Exchange, prompt: int, completion: int, cost: int) -> None:
        self.exchange = exchange
        self.prompt = prompt
        self.completion = completion
        self.cost = cost
        self.recorded = 0
        self.shipped = False
        self.opened = time.monotonic()

    def blob(self, open_id: str, copy: bool = False) -> bytes:
        """Its journal line or database copy, fields in `OPEN_FIELDS`' order."""
        e = self.exchange
        return encode_open(
            (
                e.request_id,
                e.created,
                e.key_id,
                e.door,
                e.model,
                e.provider,
                e.served_by,
                e.upstream_model,
                e.deployment,
                e.stream,
                self.prompt,
                self.completion,
                self.cost,
                open_id,
            ),
            copy,
        )


def ledger_record(exchange: Exchange) -> LedgerRecord:
    """The record of a request as far as its exchange names it (what, where, by whom); by
    position, which costs half the keywords on every request."""
    return LedgerRecord(
        exchange.request_id,
        exchange.created,
        exchange.key_id,
        exchange.door,
        exchange.model,
        exchange.provider,
        exchange.served_by,
        exchange.upstream_model,
        exchange.deployment,
        exchange.stream,
    )


def model_allowed(patterns: tuple[str, ...], *names: str) -> bool:
    """A key's model list matches the name asked for or the entry that serves it (`*` globs)."""
    return any(name and fnmatch.fnmatchcase(name, pattern) for pattern in patterns for name in names)


def _not_in_memory(ask: LimitAsk) -> Decision | None:
    return None


async def _caught(work: Awaitable[T]) -> T | BaseException:
    try:
        return await work
    except Exception as exc:
        return exc


class Governance:
    def __init__(
        self,
        config: GovernanceConfig,
        store: Store,
        keys: KeyStore,
        limiter: Limiter,
        models: dict[str, Any],
        providers: dict[str, Any],
        journal_dir: Path | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.keys = keys
        self.limiter = limiter
        self.models = models  # entry name -> ModelEntry (its price)
        self.providers = providers  # entry name -> provider (its tokenizer)
        self.prices = PriceBook(models, providers)
        self.ledger = LedgerWriter(
            store, config.ledger_flush_s, config.ledger_batch, config.ledger_buffer, on_written=self._written
        )
        self.counter = TokenCounter()
        self._sweeper: asyncio.Task[None] | None = None
        self._corrector: asyncio.Task[None] | None = None
        self._corrections: dict[str, int] = {}  # key id -> tokens to add to this minute's count
        self._reservations: GroupCommit[ReservationAsk, Reservation] = GroupCommit(store.reserve_many)
        self.leases = BudgetLeases(self._reservations.submit, self.ledger.release, config.lease_s)
        self.durable: Durability | None = None
        # the requests in flight with an open record, by its id
        self._in_flight: dict[str, InFlight] = {}
        self._progress: asyncio.Task[None] | None = None
        if config.durable_admission:
            self.durable = Durability(
                store, config.heartbeat_s, config.instance_timeout_s, self.leases.close_all, journal_dir
            )
        # A request's limits are checked by a plain call when the answer is in memory (a slice
        # of its Redis limits, or this process's own counters: a dict update), else awaited.
        self._limits: GroupCommit[LimitAsk, Decision] | None = None
        self.slices: LimitSlices | None = None
        self._limit_now: Callable[[LimitAsk], Decision | None] = _not_in_memory
        self._limit_later: Callable[[LimitAsk], Awaitable[Decision]] = lambda ask: limiter.acquire(*ask)
        if isinstance(limiter, RedisLimiter):
            self._limits = GroupCommit(limiter.acquire_many)
            self.slices = LimitSlices(limiter, self._limits.submit, config.limit_slice_s)
            self._limit_now, self._limit_later = self.slices.try_acquire, self.slices.acquire
        elif isinstance(limiter, MemoryLimiter):
            self._limit_now = lambda ask: limiter.acquire_now(*ask)

    async def start(self) -> None:
        if self.durable is not None:
            await self.durable.start()  # the dead processes' budget is back before this one serves
            self._progress = asyncio.get_running_loop().create_task(self._progress_loop())
        self.ledger.start()
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep())
        self._corrector = asyncio.get_running_loop().create_task(self._correct_loop())
        self.counter.warm(
            [
                str(getattr(m, "upstream_model", None) or m.name)
                for m in self.models.values()
                if m.provider != "local"
            ]
        )

    async def close(self) -> None:
        for task in (self._sweeper, self._corrector, self._progress):
            if task is not None:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        await self._correct()
        for batches in (self._limits, self._reservations):
            if batches is not None:
                await batches.close()
        self.leases.close_all()  # released by the ledger's last flush, after their records
        await self.ledger.close()
        if self.durable is not None:
            await self.durable.close()
        await self.limiter.close()

    async def _correct_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.ledger_flush_s)
            self.leases.expire()
            await self._correct()

    async def _correct(self) -> None:
        """Add the answers' tokens to the limiter, for every key in one round trip."""
        corrections, self._corrections = self._corrections, {}
        if not corrections:
            return
        try:
            add_many = getattr(self.limiter, "add_many", None)
            if add_many is not None:
                await add_many(corrections)
            else:
                for key_id, tokens in corrections.items():
                    await self.limiter.add_tokens(key_id, tokens)
        except Exception:
            log.exception("correcting the token counts of %d keys failed", len(corrections))

    async def _sweep(self) -> None:
        """Release reservations whose process died before settling them."""
        while True:
            try:
                released = await self.store.release_expired(time.time() - self.config.reservation_ttl_s)
                if released:
                    log.warning("released %d reservations left by requests that never settled", released)
            except Exception:
                log.exception("releasing expired reservations failed")
            await asyncio.sleep(min(SWEEP_S, max(0.5, self.config.reservation_ttl_s / 2)))

    async def admit(self, exchange: Exchange) -> None:
        key = self.keys.by_id(exchange.key_id)
        if key is None:
            return
        admission = Admission(key.id)
        exchange.state[STATE] = admission
        may_use = None
        if key.models is not None:
            if not model_allowed(key.models, exchange.model, exchange.served_by):
                raise PermissionDeniedError(
                    f"This API key may not use the model `{exchange.model}`.",
                    code="model_not_allowed",
                    param="model",
                )
            may_use = partial(model_allowed, key.models)
            if exchange.request is not None:
                exchange.request.may_use = may_use  # routing asks it before each fallback
        limited, budgeted = bool(key.rpm or key.tpm), key.budget_nanos is not None
        if not (limited or budgeted):
            if self.durable is not None:
                self._open(exchange, admission, self._prompt(exchange), None)
            return
        prompt = self._prompt(exchange)
        cost = prompt if key.tpm else 0
        # Most requests of a busy key are checked and held in memory: on a slice of its Redis
        # limits and on a lease of its budget; what needs a round trip goes in group commits.
        # Those in memory are plain calls; only the rest is awaited.
        decision: Decision | BaseException | None = None
        if limited:
            ask = (key.id, key.rpm, key.tpm, cost)
            decision = self._limit_now(ask) or await _caught(self._limit_later(ask))
        held: Hold | BaseException | None = None
        if budgeted:
            candidates = self.prices.most(exchange.served_by, key.models, may_use)
            request = exchange.request
            most = PriceBook.estimate(
                candidates, prompt, request.max_tokens if request else None, max(1, request.n) if request else 1
            )
            held = self.leases.try_hold(key, most) or await _caught(self.leases.hold(key, most))
        if isinstance(held, Hold) and held.ok:
            admission.hold = held  # given back at settle, even if refused below
        # fail closed: limits or budget that cannot be checked refuse the request
        if isinstance(decision, BaseException):
            raise self._unreachable(exchange, self._limits_kept_in(), decision) from decision
        if isinstance(held, BaseException):
            raise self._unreachable(exchange, self._budget_kept_in(), held) from held
        if decision is not None:
            exchange.response_headers.update(decision.headers)
            if not decision.ok:
                limit = key.rpm if decision.exceeded == "requests" else key.tpm
                raise RateLimitError(
                    f"Rate limit reached for this API key: {limit} {decision.exceeded} per minute. Please try"
                    f" again in {max(1, round(decision.retry_after_s))}s.",
                    retry_after=max(1.0, decision.retry_after_s),
                )
            if key.tpm:
                admission.tokens_counted = cost
        if held is not None and not held.ok:
            balance, estimate = nanos_to_usd(held.balance_nanos), nanos_to_usd(held.amount)
            raise InsufficientBalanceError(
                f"This API key's budget is exhausted: the request may cost up to ${estimate:.6f} and"
                f" ${max(0.0, balance):.6f} remains.",
                extra={"balance_usd": balance, "estimated_cost_usd": estimate},
            )
        if self.durable is not None:
            self._open(exchange, admission, prompt, held.amount if held is not None else None)

    def _open(self, exchange: Exchange, admission: Admission, prompt: int, estimate: int | None) -> None:
        """The admitted request's open record, journaled before its upstream call: what a crash
        leaves of it is this record (its estimate, or the progress `_progress_loop` recorded),
        closed as interrupted."""
        assert self.durable is not None
        cost = estimate if estimate is not None else self._estimate(exchange, prompt)
        entry = InFlight(exchange, prompt, self._completion_cap(exchange), cost)
        admission.open_id = self.durable.open(entry.blob)
        if admission.open_id is not None:
            self._in_flight[admission.open_id] = entry

    def _written(self, records: list[LedgerRecord]) -> None:
        """A ledger batch is committed: its requests' journal entries are closed."""
        if self.durable is not None:
            self.durable.closed([r.journal_id for r in records if r.journal_id])

    async def _progress_loop(self) -> None:
        """Every heartbeat, the completion tokens of the requests in flight that produced more
        since the last look go into their open records (a crash then bills what was produced, an
        estimate from the text sent, one token per 4 characters, not the whole cap), and the
        requests running longer than a heartbeat get a copy in the database, where a replica on
        another host finds them if this one dies."""
        while True:
            await asyncio.sleep(self.config.heartbeat_s)
            await self._heartbeat()

    async def _heartbeat(self) -> None:
        """One look (its own call, so that its rows, a record per request in flight, are not
        held through the sleep to the next)."""
        rows = self._progress_rows()
        assert self.durable is not None
        self.durable.progress(rows)
        shipped = {open_id for open_id, entry in self._in_flight.items() if entry.shipped}
        try:
            await self._ship()
            progressed = [row for row in rows if row[0] in shipped]
            if progressed:
                await self.store.record_progress(progressed)
        except Exception as exc:
            log.warning("copying the requests in flight to the database failed: %r", exc)

    def _progress_rows(self) -> list[tuple[str, bytes]]:
        rows: list[tuple[str, bytes]] = []
        for open_id, entry in self._in_flight.items():
            exchange = entry.exchange
            usage = exchange.usage
            produced = usage.completion_tokens if usage is not None else -(-_output_chars(exchange) // 4)
            if produced <= entry.recorded:
                continue
            entry.recorded = entry.completion = produced
            price = self.prices.price(exchange.served_by, exchange.deployment)
            entry.cost = cost_nanos(price, Usage(entry.prompt, produced))
            rows.append((open_id, entry.blob(open_id, copy=True)))
        return rows

    async def _ship(self) -> None:
        """The open records of requests older than a heartbeat, copied into the database."""
        assert self.durable is not None
        due = time.monotonic() - self.config.heartbeat_s
        entries = [(i, e) for i, e in self._in_flight.items() if not e.shipped and e.opened <= due]
        if not entries:
            return
        instance = self.durable.id
        await self.store.open_requests(
            [(open_id, instance, entry.exchange.created, entry.blob(open_id, copy=True)) for open_id, entry in entries]
        )
        for _, entry in entries:  # one settled meanwhile leaves its copy for the reap, which skips it
            entry.shipped = True

    @staticmethod
    def _unreachable(exchange: Exchange, where: str, failure: BaseException) -> ServiceUnavailableError:
        log.error("admission of %s failed: %s is unreachable: %r", exchange.request_id, where, failure)
        return ServiceUnavailableError(
            f"The gateway cannot reach {where} right now ({type(failure).__name__}), so this key's"
            " limits and budget cannot be checked; try again shortly.",
            retry_after=1,
        )

    def _limits_kept_in(self) -> str:
        return "Redis, where this key's rate limits are counted" if self.limiter.backend == "redis" else "the limiter"

    def _budget_kept_in(self) -> str:
        service = "PostgreSQL" if self.store.backend == "postgresql" else "SQLite"
        return f"the database ({service}), where this key's budget is kept"

    @staticmethod
    def _prompt(exchange: Exchange) -> int:
        """The prompt tokens admission counts: the door's own count where it has one
        (embeddings), else the estimate of the whole body."""
        hint = exchange.prompt_tokens_hint
        if hint is not None:
            return hint
        return prompt_estimate(exchange.request, exchange.provider, exchange.upstream_model)

    def _estimate(self, exchange: Exchange, prompt: int) -> int:
        """What the request may cost at its model's own price (an open row's estimate)."""
        price = self.prices.price(exchange.served_by, exchange.deployment)
        return estimate_nanos(price, prompt, self._completion_cap(exchange))

    def _completion_cap(self, exchange: Exchange) -> int:
        """The completion tokens a request is admitted for: its cap, else its model entry's
        `max_output_tokens`, times `n`."""
        request = exchange.request
        completion = request.max_tokens if request and request.max_tokens is not None else None
        if completion is None:
            entry = self.models.get(exchange.served_by)
            completion = getattr(entry, "max_output_tokens", None) or DEFAULT_MAX_OUTPUT_TOKENS
        choices = request.n if request else 1
        return completion * max(1, choices)

    def _answered_by(self, exchange: Exchange) -> Any:
        return self.prices.answered_by(exchange.served_by, exchange.deployment)

    async def settle(self, exchange: Exchange) -> None:
        admission = exchange.state.get(STATE)
        usage, source = await self.counter.usage_for(exchange, self._answered_by(exchange))
        segments = None
        if exchange.seams:  # several deployments wrote the answer: each part at its own price
            record_cost, segments = split_bill(exchange, usage, source, self.prices)
        else:
            record_cost = cost_nanos(self.prices.price(exchange.served_by, exchange.deployment), usage)
        if exchange.cache_hit:  # the tokens the answer had, at no cost unless the entry bills hits
            cache = getattr(self.models.get(exchange.served_by), "cache", None)
            source, record_cost = "cache", record_cost if cache is not None and cache.bill_hits else 0
        record = ledger_record(exchange)
        record.status, record.error_type, record.error_code = exchange.status, exchange.error_type, exchange.error_code
        record.finish_reason, record.usage_source, record.cost_nanos = exchange.finish_reason, source, record_cost
        record.prompt_tokens, record.completion_tokens = usage.prompt_tokens, usage.completion_tokens
        record.cached_tokens, record.cache_creation_tokens = usage.cached_tokens, usage.cache_creation_tokens
        record.reasoning_tokens, record.client_gone = usage.reasoning_tokens, exchange.client_gone
        record.segments = segments
        record.ttft_ms = exchange.ttft_s * 1000 if exchange.ttft_s is not None else None
        record.total_ms = exchange.total_s * 1000 if exchange.total_s is not None else None
        if admission is not None:
            record.reservation_id = admission.hold.reservation_id if admission.hold else None
            if admission.open_id is not None:
                record.journal_id = admission.open_id
                entry = self._in_flight.pop(admission.open_id, None)
                if entry is not None and entry.shipped:
                    record.open_id = admission.open_id  # its database copy goes with this record
        self.ledger.add(record)
        if admission is not None and admission.hold is not None:
            self.leases.settle(admission.hold, record_cost)
        if admission is not None and admission.tokens_counted is not None:
            correction = usage.prompt_tokens + usage.completion_tokens - admission.tokens_counted
            if self.limiter.backend == "memory":  # free: at once
                await self.limiter.add_tokens(admission.key_id, correction)
            else:  # batched with the other keys' every `ledger_flush_s`
                self._corrections[admission.key_id] = self._corrections.get(admission.key_id, 0) + correction


def _output_chars(exchange: Exchange) -> int:
    """The characters an answer in flight has sent: its noted text, or a relayed answer's text
    (kept undecoded until the end: decoded here, at a heartbeat, for the requests past one)."""
    chars = sum(map(len, exchange.output_parts))
    if not chars and exchange.transcript is not None:
        chars = sum(map(len, exchange.transcript()))
    return chars
