"""What the stores keep: keys with their rules and spend, ledger records, usage rows.

Money is integer nano-dollars (1 USD = 10**9) everywhere it is stored or summed, so the ledger
adds up to a key's spend exactly, whatever the order of the additions; USD floats appear only
at the edges (config, CLI, JSON).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

NANOS_PER_USD = 1_000_000_000


def usd_to_nanos(usd: float) -> int:
    return round(usd * NANOS_PER_USD)


def nanos_to_usd(nanos: int) -> float:
    return nanos / NANOS_PER_USD


_SECONDS_PER_DAY = 86_400
_last_day: tuple[int, str] = (-1, "")


def utc_day(epoch: float) -> str:
    """Every ledger record asks twice (its row, the daily sums), nearly always for the day it
    asked last: the last answer is kept (formatting a datetime is not free)."""
    global _last_day
    number = int(epoch // _SECONDS_PER_DAY)
    if number != _last_day[0]:
        _last_day = (number, dt.datetime.fromtimestamp(number * _SECONDS_PER_DAY, dt.UTC).strftime("%Y-%m-%d"))
    return _last_day[1]


@dataclass(frozen=True, slots=True)
class KeyRecord:
    id: str
    name: str
    hint: str
    created_at: float
    revoked_at: float | None = None
    expires_at: float | None = None
    budget_nanos: int | None = None  # None: no budget
    spent_nanos: int = 0
    reserved_nanos: int = 0
    rpm: int | None = None
    tpm: int | None = None
    models: tuple[str, ...] | None = None  # None: every model
    admin: bool = False
    updated_at: float = 0.0

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def to_json(self) -> dict[str, Any]:
        """The key as the admin API and `keys list --format json` show it (never the secret)."""
        budget = None if self.budget_nanos is None else nanos_to_usd(self.budget_nanos)
        remaining = None
        if self.budget_nanos is not None:
            remaining = nanos_to_usd(self.budget_nanos - self.spent_nanos - self.reserved_nanos)
        return {
            "id": self.id,
            "name": self.name,
            "hint": self.hint,
            "admin": self.admin,
            "status": self.status(),
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
            "expires_at": self.expires_at,
            "budget_usd": budget,
            "spent_usd": nanos_to_usd(self.spent_nanos),
            "reserved_usd": nanos_to_usd(self.reserved_nanos),
            "remaining_usd": remaining,
            "rpm": self.rpm,
            "tpm": self.tpm,
            "models": list(self.models) if self.models is not None else None,
        }

    def status(self, now: float | None = None) -> str:
        import time

        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= (now or time.time()):
            return "expired"
        return "active"


# The fields `update_key` may change, and the column each one is stored in.
KEY_UPDATABLE = {
    "name": "name",
    "expires_at": "expires_at",
    "budget_nanos": "budget_nanos",
    "rpm": "rpm",
    "tpm": "tpm",
    "models": "models",
    "revoked_at": "revoked_at",
}


@dataclass(slots=True)
class LedgerRecord:
    request_id: str
    created_at: float
    key_id: str | None
    door: str
    model: str
    provider: str = ""
    served_by: str = ""
    upstream_model: str = ""
    deployment: str = ""
    stream: bool = False
    status: int = 200
    error_type: str | None = None
    error_code: str | None = None
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cache_creation_tokens: int = 0
    reasoning_tokens: int = 0
    usage_source: str = "none"  # upstream | tokenizer | estimate | none
    cost_nanos: int = 0
    ttft_ms: float | None = None
    total_ms: float | None = None
    client_gone: bool = False
    # an answer several deployments wrote (mid-stream fail-over): each one's part, tokens and
    # cost, as JSON (governance/segments.py); None for the rest
    segments: str | None = None
    # settlement, not stored in the ledger row: the reservation this request held, and the
    # database copy of its open record (governance/durable.py), removed with this record
    reservation_id: str | None = None
    open_id: str | None = None
    # its open id, by which its entry in the process's in-flight journal is closed once written;
    # stored (ledger column `journal_id`) so that a reaper reading that entry after a crash knows
    # the request is billed already
    journal_id: str | None = None

    @property
    def day(self) -> str:
        return utc_day(self.created_at)

    def row(self) -> tuple[Any, ...]:
        return (
            self.request_id,
            self.created_at,
            self.day,
            self.key_id,
            self.door,
            self.model,
            self.provider,
            self.served_by,
            self.upstream_model,
            self.deployment,
            self.stream,
            self.status,
            self.error_type,
            self.error_code,
            self.finish_reason,
            self.prompt_tokens,
            self.completion_tokens,
            self.cached_tokens,
            self.cache_creation_tokens,
            self.reasoning_tokens,
            self.usage_source,
            self.cost_nanos,
            self.ttft_ms,
            self.total_ms,
            self.client_gone,
            self.segments,
            self.journal_id or self.open_id,
        )


LEDGER_COLUMNS = (
    "request_id, created_at, day, key_id, door, model, provider, served_by, upstream_model, deployment,"
    " stream, status, error_type, error_code, finish_reason, prompt_tokens, completion_tokens,"
    " cached_tokens, cache_creation_tokens, reasoning_tokens, usage_source, cost_nanos, ttft_ms,"
    " total_ms, client_gone, segments, journal_id"
)
LEDGER_FIELDS = [name.strip() for name in LEDGER_COLUMNS.split(",")]


INTERRUPTED = "interrupted"  # the error type of a request whose process died under it
_RECORD_FIELDS = frozenset(LedgerRecord.__dataclass_fields__)


# An open record's fields, in the order its blob lists them. Append only: a blob written by an
# earlier version is read with the fields it has (the rest keep the ledger record's defaults).
OPEN_FIELDS = (
    "request_id",
    "created_at",
    "key_id",
    "door",
    "model",
    "provider",
    "served_by",
    "upstream_model",
    "deployment",
    "stream",
    "prompt_tokens",
    "completion_tokens",
    "cost_nanos",
    "open_id",
)


def encode_open(values: tuple[Any, ...], copy: bool = True) -> bytes:
    """An admitted request's open record (`OPEN_FIELDS`' values) as its journal line and its
    database copy keep it: a JSON array, written on every admitted request's path, where orjson
    walking a slotted dataclass by `getattr` (and a record built for it) cost five times as much.
    `copy`: to its own size, for a blob that is kept (a progress row held through a heartbeat, a
    database copy); orjson's bytes keep the 16 KiB buffer they were written in."""
    blob = orjson.dumps(values)
    return bytes(memoryview(blob)) if copy else blob


def open_fields(blob: bytes) -> dict[str, Any]:
    """An open blob read back, by field name: an array of `OPEN_FIELDS`, or the object of the
    versions before it. Raises orjson.JSONDecodeError (or ValueError) on a torn blob."""
    fields = orjson.loads(blob)
    if isinstance(fields, list):
        return dict(zip(OPEN_FIELDS, fields, strict=False))  # an earlier version wrote fewer
    if isinstance(fields, dict):
        return fields
    raise ValueError(f"an open record is a JSON array or object, not {type(fields).__name__}")


def interrupted_records(blobs: Sequence[bytes]) -> dict[str, LedgerRecord]:
    """The interrupted records of open rows, one per admitted request, by its open id (the last
    copy read wins). Never by request id: a client may send its own `x-request-id`, the same on
    several requests, and each of them was admitted and is billed."""
    records: dict[str, LedgerRecord] = {}
    for blob in blobs:
        record = interrupted_record(blob)
        records[record.journal_id or f"{record.request_id}#{len(records)}"] = record
    return records


def interrupted_record(blob: bytes) -> LedgerRecord:
    """The ledger record of a request whose process died before settling it: what its open row
    knew (the prompt estimate, the completion it was admitted for, that estimate's cost, so
    `usage_source` "estimate"), ended as interrupted."""
    fields = open_fields(blob)
    record = LedgerRecord(**{name: value for name, value in fields.items() if name in _RECORD_FIELDS})
    record.status = 500
    record.error_type = INTERRUPTED
    record.error_code = "gateway_process_died"
    record.finish_reason = None
    record.usage_source = "estimate"
    record.journal_id, record.open_id = record.open_id, None  # the row keeps its open id: a second reap skips it
    record.reservation_id = None  # the reap releases the reservations itself
    return record


@dataclass(frozen=True, slots=True)
class InstanceRow:
    """A gateway process as the store knows it: where it runs and how long it has been silent."""

    id: str
    host: str
    pid: int
    pid_start: str
    silent_s: float  # since its last heartbeat, on the store's clock


# One admitted request's open row: open id, instance id, created_at, the record (encode_open).
OpenRow = tuple[str, str, float, bytes]


@dataclass(frozen=True, slots=True)
class Reservation:
    ok: bool
    balance_nanos: int  # what is left after this reservation (ok) or before it (refused)


# One budget reservation asked of the store: key id, reservation id, amount (nano-dollars), time.
ReservationAsk = tuple[str, str, int, float]


@dataclass(slots=True)
class DailyTotals:
    """One (day, key, model) row of the usage aggregate, summed over a batch of records."""

    requests: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cost_nanos: int = 0

    def add(self, record: LedgerRecord) -> None:
        self.requests += 1
        self.errors += 1 if record.status >= 400 else 0
        self.prompt_tokens += record.prompt_tokens
        self.completion_tokens += record.completion_tokens
        self.cached_tokens += record.cached_tokens
        self.reasoning_tokens += record.reasoning_tokens
        self.cost_nanos += record.cost_nanos


@dataclass(slots=True)
class Settlement:
    """A batch of records reduced to what the tables need: rows, per-key spend, daily sums."""

    records: list[LedgerRecord]
    spend: dict[str, int] = field(default_factory=dict)  # key id -> nanos
    daily: dict[tuple[str, str, str], DailyTotals] = field(default_factory=dict)
    reservations: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, records: list[LedgerRecord], releases: Sequence[str] = ()) -> Settlement:
        out = cls(records, reservations=list(releases))
        for record in records:
            key = record.key_id or ""
            out.spend[key] = out.spend.get(key, 0) + record.cost_nanos
            group = (record.day, key, record.model)
            totals = out.daily.get(group)
            if totals is None:  # not setdefault: its default would be built for every record
                totals = out.daily[group] = DailyTotals()
            totals.add(record)
            if record.reservation_id:
                out.reservations.append(record.reservation_id)
        return out


USAGE_GROUPS = {"key": "u.key_id", "model": "u.model", "day": "u.day"}
USAGE_SUMS = (
    "SUM(u.requests), SUM(u.errors), SUM(u.prompt_tokens), SUM(u.completion_tokens),"
    " SUM(u.cached_tokens), SUM(u.reasoning_tokens), SUM(u.cost_nanos)"
)


def usage_row(groups: list[str], values: tuple[Any, ...], names: dict[str, str]) -> dict[str, Any]:
    """A usage aggregate row as JSON: the group columns, then the sums."""
    row: dict[str, Any] = {}
    for group, value in zip(groups, values, strict=False):
        if group == "key":
            row["key_id"] = value or None
            row["key_name"] = names.get(value or "")
        else:
            row[group] = value
    requests, errors, prompt, completion, cached, reasoning, cost = (int(v or 0) for v in values[len(groups) :])
    row.update(
        requests=requests,
        errors=errors,
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        cached_tokens=cached,
        reasoning_tokens=reasoning,
        cost_usd=nanos_to_usd(cost),
    )
    return row


def ledger_json(row: dict[str, Any]) -> dict[str, Any]:
    """A ledger row (as the columns came out of the store) as JSON."""
    out = dict(row)
    out.pop("journal_id", None)  # the store's own bookkeeping (durable admission)
    out["stream"] = bool(out["stream"])
    out["client_gone"] = bool(out["client_gone"])
    out["segments"] = orjson.loads(out["segments"]) if out.get("segments") else None
    out["cost_usd"] = nanos_to_usd(int(out.pop("cost_nanos") or 0))
    out["estimated"] = out["usage_source"] == "estimate"
    out["total_tokens"] = int(out["prompt_tokens"]) + int(out["completion_tokens"])
    return out
