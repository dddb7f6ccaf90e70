"""A key's rules as people write them (`--expires 30d`, `--budget 5`, `models: [a, b]`), turned
into the stored fields; shared by the CLI and the admin API."""

from __future__ import annotations

import datetime as dt
import re
import time
from typing import Any

from sluicegate.store.records import usd_to_nanos

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
NONE_WORDS = {"none", "never", "unlimited", "all", "null", ""}


class RuleError(ValueError):
    """A rule that cannot be understood; the message says which and why."""


def parse_duration(text: str) -> float:
    match = _DURATION.match(text)
    if not match:
        raise RuleError(f"not a duration: {text!r} (use e.g. 90m, 12h, 30d, 2w)")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_expiry(text: str | float | None, now: float | None = None) -> float | None:
    """`30d` (from now), `2026-12-31` (midnight UTC), an ISO time, epoch seconds, or `never`."""
    if text is None or (isinstance(text, str) and text.strip().lower() in NONE_WORDS):
        return None
    if isinstance(text, int | float):
        return float(text)
    now = time.time() if now is None else now
    if _DURATION.match(text):
        return now + parse_duration(text)
    try:
        moment = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise RuleError(f"not an expiry: {text!r} (use 30d, 2026-12-31 or never)") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


def parse_day(text: str | None, now: float | None = None) -> str | None:
    """A `--since` / `--until` day: `2026-11-01`, or `7d` (that many days ago)."""
    if text is None:
        return None
    if _DURATION.match(text):
        moment = (time.time() if now is None else now) - parse_duration(text)
        return dt.datetime.fromtimestamp(moment, dt.UTC).strftime("%Y-%m-%d")
    try:
        return dt.date.fromisoformat(text.strip()).isoformat()
    except ValueError as exc:
        raise RuleError(f"not a date: {text!r} (use 2026-11-01 or 7d)") from exc


def parse_limit(value: str | int | None, name: str) -> int | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in NONE_WORDS):
        return None
    try:
        number = int(value)
    except (TypeError, ValueError) as exc:
        raise RuleError(f"{name} must be a whole number or 'none', not {value!r}") from exc
    if number <= 0:
        raise RuleError(f"{name} must be positive (or 'none' for no limit)")
    return number


def parse_budget(value: str | float | None) -> int | None:
    """USD -> nano-USD; `none` for no budget."""
    if value is None or (isinstance(value, str) and value.strip().lower() in NONE_WORDS):
        return None
    try:
        usd = float(str(value).lstrip("$"))
    except ValueError as exc:
        raise RuleError(f"budget must be an amount in USD or 'none', not {value!r}") from exc
    if usd < 0:
        raise RuleError("budget must not be negative")
    return usd_to_nanos(usd)


def parse_models(value: str | list[str] | None) -> tuple[str, ...] | None:
    """`a,b` or a list; `all` (or nothing) for every model."""
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    models = tuple(item.strip() for item in items if item.strip())
    if not models or (len(models) == 1 and models[0].lower() in NONE_WORDS):
        return None
    return models


def rules_from(fields: dict[str, Any], now: float | None = None) -> dict[str, Any]:
    """The stored fields for the rules present in `fields` (keys: name, budget, budget_usd, rpm,
    tpm, models, expires, expires_at, expires_in); absent rules are left out, so an update
    changes only what it names."""
    out: dict[str, Any] = {}
    if fields.get("name") is not None:
        name = str(fields["name"]).strip()
        if not name:
            raise RuleError("name must not be empty")
        out["name"] = name
    for source in ("budget", "budget_usd"):
        if source in fields:
            out["budget_nanos"] = parse_budget(fields[source])
    for limit in ("rpm", "tpm"):
        if limit in fields:
            out[limit] = parse_limit(fields[limit], limit)
    if "models" in fields:
        out["models"] = parse_models(fields["models"])
    for source in ("expires", "expires_at", "expires_in"):
        if source in fields:
            value = fields[source]
            if source == "expires_in" and isinstance(value, int | float):
                value = f"{value}s"
            out["expires_at"] = parse_expiry(value, now)
    return out
