"""SQL both stores share, written with `$n` parameters (PostgreSQL's); SQLite gets `?n`."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable
from typing import Any

import orjson

from sluicegate.store.records import (
    KEY_UPDATABLE,
    LEDGER_COLUMNS,
    LEDGER_FIELDS,
    USAGE_GROUPS,
    USAGE_SUMS,
    DailyTotals,
    KeyRecord,
    LedgerRecord,
    ledger_json,
    usage_row,
)

KEY_COLUMNS = (
    "id, name, key_hint, created_at, revoked_at, expires_at, budget_nanos, spent_nanos, reserved_nanos,"
    " rpm, tpm, models, is_admin, updated_at"
)
KEY_INSERT = (
    "INSERT INTO api_keys (id, name, key_hash, key_hint, created_at, expires_at, budget_nanos, rpm, tpm,"
    " models, is_admin, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
)
KEY_GET = f"SELECT {KEY_COLUMNS} FROM api_keys WHERE id = $1 OR key_hint = $1"
KEYS_VERSION = "SELECT COUNT(*), MAX(updated_at) FROM api_keys"
RESERVE = (
    "UPDATE api_keys SET reserved_nanos = reserved_nanos + $2 WHERE id = $1"
    " AND (budget_nanos IS NULL OR spent_nanos + reserved_nanos + $2 <= budget_nanos)"
    " RETURNING budget_nanos - spent_nanos - reserved_nanos"
)
BALANCE = "SELECT budget_nanos - spent_nanos - reserved_nanos FROM api_keys WHERE id = $1"
RESERVATION_INSERT = (
    "INSERT INTO reservations (id, key_id, amount_nanos, created_at, instance_id) VALUES ($1, $2, $3, $4, $5)"
)
RESERVATIONS_OF = "DELETE FROM reservations WHERE instance_id = $1 RETURNING key_id, amount_nanos"
INSTANCE_INSERT = (
    "INSERT INTO instances (id, host, pid, pid_start, started_at, heartbeat_at) VALUES ($1, $2, $3, $4, $5, $6)"
)
INSTANCE_BEAT = "UPDATE instances SET heartbeat_at = $2 WHERE id = $1 RETURNING id"
INSTANCE_CLAIM = "DELETE FROM instances WHERE id = $1 RETURNING id"
INSTANCES = "SELECT id, host, pid, pid_start, heartbeat_at FROM instances"
OPEN_INSERT = "INSERT INTO ledger_open (id, instance_id, created_at, record) VALUES ($1, $2, $3, $4)"
OPEN_PROGRESS = "UPDATE ledger_open SET record = $2 WHERE id = $1"
OPEN_REAP = "DELETE FROM ledger_open WHERE instance_id = $1 RETURNING record"
REAP_LOCK = "SELECT pg_advisory_xact_lock(7243101)"  # PostgreSQL: one reaper at a time (the ledger check below)
RESERVATION_DELETE = "DELETE FROM reservations WHERE id = $1 RETURNING key_id, amount_nanos"
RESERVATIONS_EXPIRED = "DELETE FROM reservations WHERE created_at < $1 RETURNING key_id, amount_nanos"
SPEND = (
    "UPDATE api_keys SET spent_nanos = spent_nanos + $2, reserved_nanos = reserved_nanos - $3 WHERE id = $1"
)
LEDGER_INSERT = (
    f"INSERT INTO ledger ({LEDGER_COLUMNS}) VALUES ("
    + ", ".join(f"${n}" for n in range(1, len(LEDGER_FIELDS) + 1))
    + ")"
)
DAILY_UPSERT = (
    "INSERT INTO usage_daily (day, key_id, model, requests, errors, prompt_tokens, completion_tokens,"
    " cached_tokens, reasoning_tokens, cost_nanos) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
    " ON CONFLICT (day, key_id, model) DO UPDATE SET"
    " requests = usage_daily.requests + excluded.requests,"
    " errors = usage_daily.errors + excluded.errors,"
    " prompt_tokens = usage_daily.prompt_tokens + excluded.prompt_tokens,"
    " completion_tokens = usage_daily.completion_tokens + excluded.completion_tokens,"
    " cached_tokens = usage_daily.cached_tokens + excluded.cached_tokens,"
    " reasoning_tokens = usage_daily.reasoning_tokens + excluded.reasoning_tokens,"
    " cost_nanos = usage_daily.cost_nanos + excluded.cost_nanos"
)
LEDGER_TOTALS = "SELECT COUNT(*), SUM(cost_nanos) FROM ledger"
KEY_NAMES = "SELECT id, name FROM api_keys"
log = logging.getLogger("sluicegate.ledger")
_PARAM = re.compile(r"\$(\d+)")


def qmarks(query: str) -> str:
    """`$1` -> `?1` (SQLite's numbered parameters)."""
    return _PARAM.sub(r"?\1", query)


def key_insert_params(key: KeyRecord, key_hash: str) -> tuple[Any, ...]:
    return (
        key.id,
        key.name,
        key_hash,
        key.hint,
        key.created_at,
        key.expires_at,
        key.budget_nanos,
        key.rpm,
        key.tpm,
        encode_models(key.models),
        key.admin,
        key.updated_at or key.created_at,
    )


def encode_models(models: tuple[str, ...] | list[str] | None) -> str | None:
    return None if models is None else orjson.dumps(list(models)).decode()


def key_from_row(row: Any) -> KeyRecord:
    (key_id, name, hint, created, revoked, expires, budget, spent, reserved, rpm, tpm, models, admin, updated) = (
        tuple(row)
    )
    return KeyRecord(
        id=str(key_id),
        name=str(name),
        hint=str(hint),
        created_at=float(created),
        revoked_at=float(revoked) if revoked is not None else None,
        expires_at=float(expires) if expires is not None else None,
        budget_nanos=int(budget) if budget is not None else None,
        spent_nanos=int(spent or 0),
        reserved_nanos=int(reserved or 0),
        rpm=int(rpm) if rpm is not None else None,
        tpm=int(tpm) if tpm is not None else None,
        models=tuple(orjson.loads(models)) if models is not None else None,
        admin=bool(admin),
        updated_at=float(updated or 0),
    )


def key_update(key_id: str, changes: dict[str, Any], style: str) -> tuple[str, tuple[Any, ...]]:
    """An UPDATE of the given fields (and `updated_at`) returning the key's new row."""
    sets: list[str] = []
    params: list[Any] = [key_id]
    for name, value in changes.items():
        column = KEY_UPDATABLE[name]  # KeyError for a field that may not change
        params.append(encode_models(value) if name == "models" else value)
        sets.append(f"{column} = ${len(params)}")
    params.append(time.time())
    sets.append(f"updated_at = ${len(params)}")
    query = f"UPDATE api_keys SET {', '.join(sets)} WHERE id = $1 OR key_hint = $1 RETURNING {KEY_COLUMNS}"
    return (qmarks(query) if style == "?" else query), tuple(params)


def amounts_by_key(rows: Iterable[Any]) -> dict[str, int]:
    """Released reservations, `(key_id, amount_nanos)` rows, summed per key."""
    out: dict[str, int] = {}
    for key_id, amount in rows:
        out[key_id] = out.get(key_id, 0) + int(amount)
    return out


def unreaped(records: list[LedgerRecord], closed: set[str]) -> list[LedgerRecord]:
    """The records to write when some of their open rows were gone: those were closed as
    interrupted by another process that took this one for dead (it stalled past the heartbeat
    timeout), which billed them and released their reservations; writing them again would bill
    twice."""
    dropped = [r for r in records if r.open_id and r.open_id not in closed]
    log.error(
        "%d ledger records not written (requests %s): their open rows were closed already, as interrupted"
        " by another process that took this one for dead (its event loop stalled past"
        " governance.instance_timeout_s?), or by an earlier try of this batch that committed",
        len(dropped),
        ", ".join(r.request_id for r in dropped[:5]),
    )
    return [r for r in records if not r.open_id or r.open_id in closed]


def spend_params(spend: dict[str, int], released: dict[str, int]) -> list[tuple[str, int, int]]:
    """Per key, in a fixed order (so concurrent batches lock rows in the same order)."""
    keys = sorted((set(spend) | set(released)) - {""})
    return [(key, spend.get(key, 0), released.get(key, 0)) for key in keys]


def daily_params(daily: dict[tuple[str, str, str], DailyTotals]) -> list[tuple[Any, ...]]:
    return [
        (
            day,
            key,
            model,
            t.requests,
            t.errors,
            t.prompt_tokens,
            t.completion_tokens,
            t.cached_tokens,
            t.reasoning_tokens,
            t.cost_nanos,
        )
        for (day, key, model), t in sorted(daily.items())
    ]


def _filters(
    conditions: list[tuple[str, Any]], style: str, start: int = 1
) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    for clause, value in conditions:
        if value is None:
            continue
        params.append(value)
        clauses.append(clause.replace("$?", f"${start + len(params) - 1}"))
    where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
    return (qmarks(where) if style == "?" else where), params


def usage_query(
    groups: list[str], key_id: str | None, model: str | None, since: str | None, until: str | None, style: str
) -> tuple[str, tuple[Any, ...]]:
    for group in groups:
        if group not in USAGE_GROUPS:
            raise ValueError(f"cannot group usage by {group!r}; use key, model or day")
    columns = [USAGE_GROUPS[g] for g in groups]
    where, params = _filters(
        [("u.key_id = $?", key_id), ("u.model = $?", model), ("u.day >= $?", since), ("u.day <= $?", until)],
        style,
    )
    select = ", ".join([*columns, USAGE_SUMS])
    query = f"SELECT {select} FROM usage_daily u{where}"
    if columns:
        query += f" GROUP BY {', '.join(columns)} ORDER BY {', '.join(columns)}"
    return query, tuple(params)


def usage_rows(groups: list[str], rows: list[Any], names: dict[str, str]) -> list[dict[str, Any]]:
    result = [usage_row(groups, tuple(row), names) for row in rows]
    return [row for row in result if row["requests"]]


def recent_query(
    limit: int, key_id: str | None, model: str | None, before_id: int | None, style: str
) -> tuple[str, tuple[Any, ...]]:
    where, params = _filters([("key_id = $?", key_id), ("model = $?", model), ("id < $?", before_id)], style)
    params.append(max(1, min(limit, 1000)))
    limit_param = f"${len(params)}"
    query = f"SELECT id, {LEDGER_COLUMNS} FROM ledger{where} ORDER BY id DESC LIMIT {limit_param}"
    return (qmarks(query) if style == "?" else query), tuple(params)


def recent_rows(rows: list[Any]) -> list[dict[str, Any]]:
    fields = ["id", *LEDGER_FIELDS]
    return [ledger_json(dict(zip(fields, tuple(row), strict=True))) for row in rows]


def key_names(conn: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in conn.execute(KEY_NAMES).fetchall()}
