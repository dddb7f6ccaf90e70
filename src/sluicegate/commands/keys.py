"""`sluicegate keys create | list | update | revoke`, and the keys made at first start."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import orjson

from sluicegate.commands.common import settings_of, with_keys
from sluicegate.governance.keys import KEY_PREFIX, KeyStore, free_name
from sluicegate.governance.rules import rules_from
from sluicegate.operator import OperatorError
from sluicegate.settings import Settings
from sluicegate.store.base import Store
from sluicegate.store.records import KeyRecord


def first_keys(settings: Settings) -> tuple[str | None, str | None]:
    """The first API key and the admin key, made if the store has none: (secret, admin secret),
    None for each that already existed (or, for the admin key, comes from SLUICEGATE_ADMIN_KEY)."""

    async def ensure(keys: KeyStore, store: Store) -> tuple[str | None, str | None]:
        existing = await keys.list()
        secret = admin = None
        if not any(key.active and not key.admin for key in existing):
            _, secret = await keys.create(free_name({k.name for k in existing}, "default"))
        if not os.environ.get("SLUICEGATE_ADMIN_KEY") and not any(key.active and key.admin for key in existing):
            _, admin = await keys.create(free_name({k.name for k in existing}, "admin"), admin=True)
        return secret, admin

    return with_keys(settings, ensure)


def _rules(args: argparse.Namespace) -> dict[str, Any]:
    fields = {
        name: getattr(args, name)
        for name in ("name", "budget", "rpm", "tpm", "models", "expires")
        if getattr(args, name, None) is not None
    }
    return rules_from(fields)


def keys_create(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    rules = _rules(args)
    wanted: str | None = rules.pop("name", None)
    key, secret = with_keys(settings, lambda keys, _: keys.create_named(wanted, admin=args.admin, **rules), announce=True)
    print(f"created key {key.id} ({key.name}){_describe(key)}; store it now, it is not shown again:")
    print(secret)
    return 0


def keys_update(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    changes = _rules(args)

    async def update(keys: KeyStore, store: Store) -> KeyRecord:
        key = await keys.find(args.key)
        if key is None:
            raise OperatorError(f"no key with the id or name {args.key}")
        updated = await keys.update(key.id, changes)
        assert updated is not None
        return updated

    key = with_keys(settings, update, announce=True)
    print(f"updated key {key.id} ({key.name}){_describe(key)}")
    return 0


def keys_revoke(args: argparse.Namespace) -> int:
    target: str = args.key
    shown = target[:10] + "..." if target.startswith(KEY_PREFIX) else target  # never echo a secret
    revoked = with_keys(settings_of(args), lambda keys, _: keys.revoke_matching(target), announce=True)
    if not revoked:
        print(f"sluicegate: no active key with the id, name or secret {shown}", file=sys.stderr)
        return 1
    print(f"revoked {', '.join(key.id for key in revoked)}")
    return 0


def keys_list(args: argparse.Namespace) -> int:
    rows = with_keys(settings_of(args), lambda keys, _: keys.list(), announce=True)
    if args.format == "json":
        print(orjson.dumps([key.to_json() for key in rows], option=orjson.OPT_INDENT_2).decode())
        return 0
    header = f"{'ID':<22} {'NAME':<16} {'KEY':<20} {'STATUS':<8} {'SPENT':>10} {'BUDGET':>10} {'RPM':>6} {'TPM':>8}"
    print(f"{header} {'EXPIRES':<16} {'CREATED':<19} MODELS")
    for key in rows:
        print(_row(key))
    return 0


def _usd(nanos: int | None) -> str:
    return "-" if nanos is None else f"${nanos / 1e9:,.4f}"


def _when(epoch: float | None) -> str:
    return "-" if epoch is None else time.strftime("%Y-%m-%d %H:%M", time.gmtime(epoch))


def _row(key: KeyRecord) -> str:
    name = key.name + (" (admin)" if key.admin else "")
    models = ",".join(key.models) if key.models is not None else "all"
    return (
        f"{key.id:<22} {name:<16} {key.hint:<20} {key.status():<8} {_usd(key.spent_nanos):>10}"
        f" {_usd(key.budget_nanos):>10} {key.rpm or '-':>6} {key.tpm or '-':>8} {_when(key.expires_at):<16}"
        f" {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(key.created_at)):<19} {models}"
    )


def _describe(key: KeyRecord) -> str:
    parts = []
    if key.budget_nanos is not None:
        parts.append(f"budget {_usd(key.budget_nanos)}")
    if key.rpm:
        parts.append(f"{key.rpm} rpm")
    if key.tpm:
        parts.append(f"{key.tpm} tpm")
    if key.models is not None:
        parts.append("models " + ",".join(key.models))
    if key.expires_at is not None:
        parts.append("expires " + _when(key.expires_at) + " UTC")
    return (": " + ", ".join(parts)) if parts else ""


def _add_rules(parser: argparse.ArgumentParser, creating: bool) -> None:
    none = "" if creating else " ('none' removes it)"
    parser.add_argument("--name", help="a unique name for the key (default: key-N)" if creating else "a new name")
    parser.add_argument("--budget", help=f"budget in USD{none}")
    parser.add_argument("--rpm", help=f"requests per minute{none}")
    parser.add_argument("--tpm", help=f"tokens per minute{none}")
    parser.add_argument("--models", help="allowed models, comma-separated ('all' for every model)")
    parser.add_argument("--expires", help="30d, 12h, 2026-12-31 or never")


def register(sub: Any, command: Callable[..., argparse.ArgumentParser], show_help: Callable[..., int]) -> None:
    """Add `keys ...` to the CLI; `command(parent, name, text)` makes a sub-command parser with
    the options every command shares (--data-dir, --config, --debug)."""
    p_keys = sub.add_parser("keys", help="manage API keys", description="Create, update, list and revoke API keys.")
    p_keys.set_defaults(func=lambda args: show_help(p_keys))
    keys_sub = p_keys.add_subparsers(dest="keys_command", metavar="KEYS_COMMAND")

    p_create = command(keys_sub, "create", "make a new key; prints it alone on the last line")
    _add_rules(p_create, creating=True)
    p_create.add_argument("--admin", action="store_true", help="an admin key (reaches /admin/)")
    p_create.set_defaults(func=keys_create)

    p_update = command(keys_sub, "update", "change a key's name, budget, limits, models or expiry")
    p_update.add_argument("key", help="the key's id (key_...) or its name")
    _add_rules(p_update, creating=False)
    p_update.set_defaults(func=keys_update)

    p_list = command(keys_sub, "list", "list keys with spend and limits (never the secrets)")
    p_list.add_argument("--format", choices=["table", "json"], default="table")
    p_list.set_defaults(func=keys_list)

    p_revoke = command(keys_sub, "revoke", "revoke a key by id or name")
    p_revoke.add_argument("key", help="the key's id (key_...), its name, or the secret itself")
    p_revoke.set_defaults(func=keys_revoke)
