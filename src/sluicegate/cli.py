"""sluicegate: a self-hosted LLM API gateway. One base URL and one API key give streaming chat
completions from many models in the OpenAI wire format (also Anthropic Messages and OpenAI
Responses).

An operator's mistake (a bad config, an unusable data dir, a port in use) ends in one line
saying what to fix and a non-zero exit, never a traceback; `--debug` shows the traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sqlite3
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from sluicegate.extras import MissingExtra
from sluicegate.governance.rules import RuleError
from sluicegate.operator import OperatorError, prepare_data_dir
from sluicegate.settings import ConfigError, Settings, load_settings

LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Says an option's default once: not when its help already does, nor when there is none."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "default:" in text or action.default in (None, False):
            return text
        return super()._get_help_string(action)


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(getattr(args, "config", None), getattr(args, "data_dir", None))


def serve(args: argparse.Namespace) -> int:
    from sluicegate.operator import check_models, serve_gateway

    settings = _settings(args)
    host = args.host or settings.server.host
    port = args.port if args.port is not None else settings.server.port
    workers = args.workers if args.workers is not None else settings.server.workers
    prepare_data_dir(settings.data_dir, writable=True)
    check_models(settings)
    # Worker processes rebuild the settings from the environment.
    os.environ["SLUICEGATE_DATA_DIR"] = str(settings.data_dir.resolve())
    if args.config:
        os.environ["SLUICEGATE_CONFIG"] = str(Path(args.config).resolve())
    return serve_gateway(settings, host, port, workers, args.log_level, args.log_format)


def _version() -> str:
    try:
        return version("sluicegate")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sluicegate",
        description=(__doc__ or "").split("\n\n")[0],
        formatter_class=_Formatter,
        epilog="Start with `sluicegate serve`; `sluicegate COMMAND --help` explains each command.",
    )
    parser.add_argument("--version", action="version", version=f"sluicegate {_version()}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(parent: argparse._SubParsersAction[argparse.ArgumentParser], name: str, text: str) -> argparse.ArgumentParser:
        p = parent.add_parser(
            name, help=text, description=text, formatter_class=_Formatter
        )
        p.add_argument(
            "--data-dir",
            help="where keys and usage live (default: env SLUICEGATE_DATA_DIR, else the per-user data dir)",
        )
        p.add_argument("--config", help="the YAML config file (default: env SLUICEGATE_CONFIG, else none)")
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks of errors")
        return p

    p_serve = command(sub, "serve", "run the gateway")
    p_serve.add_argument("--host", help="address to listen on (default: server.host of the config, 127.0.0.1)")
    p_serve.add_argument("--port", type=_whole(0, 65535), help="port to listen on (default: server.port of the config, 8080)")
    p_serve.add_argument("--workers", type=_whole(1, 1024), help="processes (default: server.workers of the config, 1)")
    p_serve.add_argument("--log-level", default="info", choices=LOG_LEVELS, help="how much to log; debug also logs prompts and answers")
    p_serve.add_argument("--log-format", choices=["text", "json"], default="text", help="log lines on stderr")
    p_serve.set_defaults(func=serve)

    from sluicegate.commands import keys, usage

    keys.register(sub, command, _help)
    usage.register(sub, command)
    parser.set_defaults(func=lambda args: _help(parser))
    return parser


def _whole(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            number = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= number <= high:
            raise argparse.ArgumentTypeError(f"{number} is out of range; use {low} to {high}")
        return number

    return parse


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    debug = bool(getattr(args, "debug", False))
    logging.basicConfig(level=logging.WARNING, format="sluicegate: %(message)s")
    try:
        code = int(args.func(args))
        sys.stdout.flush()  # a reader that left (`| head`) shows here, not at the interpreter's exit
        return code
    except BrokenPipeError:
        # what the reader wanted it has: the rest of the output goes nowhere, without a traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except ConfigError as exc:
        if debug:
            raise
        for problem in str(exc).splitlines():  # one line per problem, each saying whose it is
            print(f"sluicegate: {problem}", file=sys.stderr)
        return 2
    except (OperatorError, MissingExtra) as exc:
        if debug:
            raise
        print(f"sluicegate: {exc}", file=sys.stderr)
        return exc.exit_code if isinstance(exc, OperatorError) else 2
    except RuleError as exc:
        if debug:
            raise
        print(f"sluicegate: {exc}", file=sys.stderr)
        return 2
    except sqlite3.Error as exc:
        if debug:
            raise
        where = getattr(args, "data_dir", None) or "the data dir"
        print(f"sluicegate: the database in {where} cannot be used ({exc}); check its permissions", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
