"""What `sluicegate serve` checks and says before and as it starts: the data dir, the model
files, the port, the first key, and a banner printed only once the port is bound.

Every problem an operator can fix becomes an `OperatorError`: one line naming the thing to
fix, and a non-zero exit.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import socket
import sqlite3
import sys
from pathlib import Path

from sluicegate import extras
from sluicegate.providers.local.config import LocalConfig
from sluicegate.settings import Settings
from sluicegate.wiring.entry import deployments_of


class OperatorError(Exception):
    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def prepare_data_dir(path: Path, writable: bool = False) -> None:
    """Create the data dir readable by its owner only, or say why it cannot be used."""
    if path.exists() and not path.is_dir():
        raise OperatorError(f"the data dir {path} is a file, not a directory; choose another with --data-dir")
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise OperatorError(
            f"cannot create the data dir {path} ({exc.strerror or exc}); choose another with --data-dir"
        ) from None
    with contextlib.suppress(OSError):
        if path.stat().st_uid == os.getuid():
            path.chmod(0o700)
    if writable:
        probe = path / ".sluicegate-write-test"
        try:
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise OperatorError(
                f"the data dir {path} is not writable ({exc.strerror or exc}); fix its permissions"
                " or choose another with --data-dir"
            ) from None


def check_models(settings: Settings) -> None:
    """Model files that do not exist, and parts of the install the config needs that are
    missing (the extras), are the config's mistake, said before anything starts."""
    try:
        if settings.database.url and settings.database.url.startswith(("postgresql://", "postgres://")):
            extras.require(extras.POSTGRES, "database.url")
        if settings.redis.url:
            extras.require(extras.REDIS, "redis.url")
        for position, entry in enumerate(settings.models):
            for model in deployments_of(entry):
                _check_model_file(model, position)
    except extras.MissingExtra as exc:
        raise OperatorError(str(exc), exit_code=2) from None


def _check_model_file(model: object, position: int) -> None:
    if not isinstance(model, LocalConfig):
        return
    asked_by = f"model {model.name!r} (models[{position}], provider: local)"
    extras.require(extras.LOCAL, asked_by)
    if not model.path:
        extras.require(extras.SMOLLM2, asked_by + " with no `path`")
    if model.path:
        if not Path(model.path).is_file():
            raise OperatorError(
                f"model {model.name!r} (models[{position}]): the model file {model.path} does not exist;"
                " fix its `path` in the config",
                exit_code=2,
            )
    else:
        from sluicegate.providers.local.model import bundled_model_path

        try:
            bundled_model_path()
        except Exception as exc:
            raise OperatorError(f"model {model.name!r}: {exc}", exit_code=2) from None


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound before anything is printed or created."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise OperatorError(
                f"cannot listen on {host}:{port}: the address is already in use; stop what uses it"
                " or choose another --port"
            ) from None
        if exc.errno == errno.EACCES:
            raise OperatorError(
                f"cannot listen on {host}:{port}: permission denied; choose a --port above 1023"
            ) from None
        raise OperatorError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; check --host") from None
    except (OverflowError, socket.gaierror) as exc:
        sock.close()
        raise OperatorError(f"cannot listen on {host}:{port}: {exc}; check --host and --port") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def browsable(host: str, port: int) -> tuple[str, str]:
    """A URL a browser on this machine can open, and a note when listening on every interface."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return f"http://{host}:{port}", ""
    if address.is_unspecified:
        local = "[::1]" if address.version == 6 else "127.0.0.1"
        return f"http://{local}:{port}", f" (listening on all interfaces: other machines use this host's address, port {port})"
    shown = f"[{host}]" if address.version == 6 else host
    return f"http://{shown}:{port}", ""


def first_key(settings: Settings) -> tuple[str | None, str | None]:
    """Keys for a fresh store, made once the port is ours: the first API key (none is active yet)
    and the admin key (none exists and SLUICEGATE_ADMIN_KEY is unset); None for each not made."""
    from sluicegate.commands.keys import first_keys

    try:
        return first_keys(settings)
    except sqlite3.Error as exc:
        raise OperatorError(f"the database in {settings.data_dir} cannot be used ({exc})") from None


def banner(settings: Settings, host: str, port: int, secret: str | None, admin: str | None = None) -> str:
    url, note = browsable(host, port)
    lines = [
        f"sluicegate is ready on {url}/v1{note}",
        f"  playground: {url}/",
        f"  data dir:   {settings.data_dir}",
        "  models:",
    ]
    width = max(len(model.name) for model in settings.models)
    for model in settings.models:
        aliases = f"  aliases: {', '.join(model.aliases)}" if model.aliases else ""
        lines.append(f"    {model.name:<{width}}  {model.provider:<9}{aliases}")
    if secret:
        lines.append(
            "Created your first API key (shown only once;"
            f" `sluicegate keys create{_keys_options(settings)}` makes more):"
        )
        lines.append(f"  {secret}")
    else:
        lines.append(
            "Your API keys are the ones made before (a key is shown only when it is made); lost yours?"
            f" `sluicegate keys create{_keys_options(settings)}` makes another"
        )
    if admin:
        lines.append("Created the admin key, for /admin/ (shown only once; or set SLUICEGATE_ADMIN_KEY):")
        lines.append(f"  admin key: {admin}")
    return "\n".join(lines)


def _keys_options(settings: Settings) -> str:
    """The config and data dir this gateway uses, for a keys command, when they are not the ones
    the command finds by itself."""
    from platformdirs import user_data_dir

    command = ""
    config = os.environ.get("SLUICEGATE_CONFIG")  # `serve --config` sets it for its workers
    if config and settings.database.url:
        command += f" --config {config}"
    if settings.data_dir.resolve() != Path(user_data_dir("sluicegate", appauthor=False)).resolve():
        command += f" --data-dir {settings.data_dir}"
    return command


def serve_gateway(
    settings: Settings, host: str, port: int, workers: int, log_level: str, log_format: str = "text"
) -> int:
    from sluicegate.server import ServeOptions, run

    sock = bind(host, port)
    port = sock.getsockname()[1]  # the one the system chose for --port 0
    secret, admin = first_key(settings)

    def ready() -> None:
        print(banner(settings, host, port, secret, admin), flush=True)

    try:
        options = ServeOptions(
            workers=workers,
            log_level=log_level,
            log_format="json" if log_format == "json" else "text",
            shutdown_timeout_s=settings.server.shutdown_timeout_s,
            worker_timeout_s=settings.server.worker_timeout_s,
            header_timeout_s=settings.server.header_timeout_s,
        )
        return run(sock, options, on_ready=ready)
    finally:
        sock.close()
        sys.stdout.flush()
