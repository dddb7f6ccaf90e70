"""`sluicegate usage`: requests, tokens and cost by key and model (and day), from the ledger's
daily aggregate."""

from __future__ import annotations

import argparse
import csv
import io
import sys
from collections.abc import Callable
from typing import Any

import orjson

from sluicegate.commands.common import settings_of, with_keys
from sluicegate.governance.rules import RuleError, parse_day
from sluicegate.store.records import USAGE_GROUPS

COLUMNS = [
    "day",
    "key_id",
    "key_name",
    "model",
    "requests",
    "errors",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "total_tokens",
    "cost_usd",
]


def usage(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    groups = [g.strip() for g in args.by.split(",") if g.strip()]
    unknown = [g for g in groups if g not in USAGE_GROUPS]
    if unknown:
        raise RuleError(f"cannot group usage by {', '.join(unknown)}; use key, model or day")
    since, until = parse_day(args.since), parse_day(args.until)
    rows = with_keys(
        settings,
        lambda keys, store: store.usage(groups, key_id=args.key, model=args.model, since=since, until=until),
        announce=True,
    )
    columns = [c for c in COLUMNS if c in rows[0]] if rows else [c for c in COLUMNS if c != "day"]
    if args.format == "json":
        print(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode())
    elif args.format == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        sys.stdout.write(out.getvalue())
    else:
        print(_table(rows, columns))
    return 0


def _cell(row: dict[str, Any], column: str) -> str:
    value = row.get(column)
    if value is None:
        return "-"
    if column == "cost_usd":
        return f"${value:,.6f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    cells = [[c.upper() for c in columns], *[[_cell(r, c) for c in columns] for r in rows]]
    if rows:
        totals = {c: sum(r[c] for r in rows) for c in columns if isinstance(rows[0].get(c), int | float)}
        cells.append([_cell(totals, c) if c in totals else ("TOTAL" if i == 0 else "") for i, c in enumerate(columns)])
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    numeric = {i for i, c in enumerate(columns) if c.endswith(("tokens", "requests", "errors", "usd"))}
    lines = [
        "  ".join(cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i]) for i, cell in enumerate(row))
        for row in cells
    ]
    return "\n".join(line.rstrip() for line in lines)


def register(sub: Any, command: Callable[..., argparse.ArgumentParser]) -> None:
    p_usage = command(sub, "usage", "requests, tokens and cost per key and model")
    p_usage.add_argument("--key", help="only this key id")
    p_usage.add_argument("--model", help="only this model (the name clients asked for)")
    p_usage.add_argument("--since", help="first day, 2026-11-01 or 7d (UTC days)")
    p_usage.add_argument("--until", help="last day, inclusive")
    p_usage.add_argument("--by", default="key,model", help="group by any of key,model,day")
    p_usage.add_argument("--format", choices=["table", "csv", "json"], default="table")
    p_usage.set_defaults(func=usage)
