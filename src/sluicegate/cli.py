"""`sluicegate serve` and `sluicegate keys ...`."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from sluicegate.settings import ConfigError, Settings, load_settings


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(getattr(args, "config", None), getattr(args, "data_dir", None))


def _key_store(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from sluicegate.governance.keys import KeyStore
    from sluicegate.store.sqlite import SQLiteStore

    settings = _settings(args)
    return KeyStore(SQLiteStore.in_data_dir(settings.data_dir))


def serve(args: argparse.Namespace) -> int:
    settings = _settings(args)
    host = args.host or settings.server.host
    port = args.port if args.port is not None else settings.server.port
    workers = args.workers or settings.server.workers
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    # Worker processes rebuild the settings from the environment.
    os.environ["SLUICEGATE_DATA_DIR"] = str(settings.data_dir.resolve())
    if args.config:
        os.environ["SLUICEGATE_CONFIG"] = str(Path(args.config).resolve())

    from sluicegate.governance.keys import KeyStore
    from sluicegate.store.sqlite import SQLiteStore

    store = SQLiteStore.in_data_dir(settings.data_dir)
    keys = KeyStore(store)
    if keys.count_active() == 0:
        _, secret = keys.create("default")
        print("Created your first API key (shown only once; `sluicegate keys create` makes more):")
        print(f"  {secret}")
    store.close()
    models = ", ".join(model.name for model in settings.models)
    print(f"sluicegate on http://{host}:{port}/v1 (playground: http://{host}:{port}/) serving: {models}")
    print(f"data dir: {settings.data_dir}", flush=True)
    from sluicegate.server import run

    return run(host, port, workers, args.log_level)


def keys_create(args: argparse.Namespace) -> int:
    key, secret = _key_store(args).create(args.name)
    print(f"created key {key.id} ({key.name}); store it now, it is not shown again:")
    print(secret)
    return 0


def keys_list(args: argparse.Namespace) -> int:
    rows = _key_store(args).list()
    print(f"{'ID':<22} {'NAME':<20} {'KEY':<20} {'CREATED':<20} STATUS")
    for key in rows:
        created = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(key.created_at))
        status = "active" if key.active else "revoked"
        print(f"{key.id:<22} {key.name:<20} {key.hint:<20} {created:<20} {status}")
    return 0


def keys_revoke(args: argparse.Namespace) -> int:
    if _key_store(args).revoke(args.id):
        print(f"revoked {args.id}")
        return 0
    print(f"no active key {args.id}", file=sys.stderr)
    return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sluicegate", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--data-dir", help="where keys and usage live (env SLUICEGATE_DATA_DIR)")
        p.add_argument("--config", help="the YAML config file (env SLUICEGATE_CONFIG)")

    p_serve = sub.add_parser("serve", help="run the gateway")
    common(p_serve)
    p_serve.add_argument("--host")
    p_serve.add_argument("--port", type=int)
    p_serve.add_argument("--workers", type=int, help="processes (default 1; the benchmark uses cores)")
    p_serve.add_argument("--log-level", default="info")
    p_serve.set_defaults(func=serve)

    p_keys = sub.add_parser("keys", help="manage API keys")
    keys_sub = p_keys.add_subparsers(dest="keys_command", required=True)
    p_create = keys_sub.add_parser("create", help="make a new key; prints it on the last line")
    common(p_create)
    p_create.add_argument("--name", default="default")
    p_create.set_defaults(func=keys_create)
    p_list = keys_sub.add_parser("list", help="list keys (never the secrets)")
    common(p_list)
    p_list.set_defaults(func=keys_list)
    p_revoke = keys_sub.add_parser("revoke", help="revoke a key by id")
    common(p_revoke)
    p_revoke.add_argument("id")
    p_revoke.set_defaults(func=keys_revoke)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"sluicegate: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
