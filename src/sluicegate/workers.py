"""Several workers under gunicorn's master: the application, the arbiter and the worker class.

What gunicorn does not do the way a gateway needs, and is added here:
- Ctrl-C stops gracefully, like SIGTERM (gunicorn's SIGINT kills the workers at once); a
  second Ctrl-C asks for the quick stop, which our workers take as "end the requests now".
- The stop signals are blocked in the master across each fork and unblocked in the worker
  once its own handler is in place, so a SIGTERM that arrives while a worker is being born
  is neither lost nor handled by the master's handler in the child.
- A worker that dies soon after it started is restarted after a delay that doubles with
  every such death (1 s up to 30 s), instead of at once, over and over.
- The workers' heartbeat comes from their event loop (also during start-up, while a model
  loads), and the master drops a dead worker's live gauges from the metrics.

Most of it goes through gunicorn's public API (settings, the `pre_fork` and `child_exit` hooks,
the worker class); the arbiter is subclassed where gunicorn has no hook: after a fork in the
master, before a respawn, once every worker has booted, and to listen on a socket already bound.
tests/cli/test_gunicorn_contract.py checks those internals against the installed gunicorn, and
CI runs it on the lowest version declared (`scripts/lowest-deps`).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

from gunicorn import glogging
from gunicorn import sock as gunicorn_sock
from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter
from gunicorn.workers.base import Worker

from sluicegate.observability import logs
from sluicegate.server import STOP_SIGNALS, GatewayServer, ServeOptions, uvicorn_config

SHORT_LIFE_S = 10.0  # a worker that dies younger than this is restarted after a delay
MAX_BACKOFF_S = 30.0


def run_prefork(sock: socket.socket, options: ServeOptions, on_ready: Callable[[], None] | None = None) -> int:
    """Serve on the bound socket with `options.workers` workers; `on_ready` runs in the master
    once every worker has started (its lifespan succeeded)."""
    master = os.getpid()
    ready_read, ready_write = os.pipe()
    os.set_blocking(ready_read, False)
    os.set_blocking(ready_write, False)
    try:
        _Application(sock, options, (ready_read, ready_write), on_ready).run()
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
        if os.getpid() != master:
            # A worker's life ends here, in the frames it inherited from the master: leave now,
            # before the master's clean-up (its metrics directory, its socket) runs in it too.
            logs.flush()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        return code
    finally:
        os.close(ready_read)
        os.close(ready_write)
    return 0


def gunicorn_settings(sock: socket.socket, o: ServeOptions) -> dict[str, Any]:
    """The master's settings, all of them gunicorn's own (test_gunicorn_contract checks the names)."""
    host, port = sock.getsockname()[:2]
    return {
        "bind": f"[{host}]:{port}" if sock.family == socket.AF_INET6 else f"{host}:{port}",
        "workers": o.workers,
        "worker_class": GatewayWorker,
        "preload_app": True,
        "timeout": math.ceil(o.worker_timeout_s),
        "graceful_timeout": math.ceil(o.shutdown_timeout_s) + 5,
        "keepalive": 5,
        "loglevel": o.log_level,
        "accesslog": None,
        "logger_class": _Log,
        "control_socket_disable": True,
        "proc_name": "sluicegate",
        "pre_fork": _pre_fork,
        "child_exit": _child_exit,
    }


async def _never_called(scope: Any, receive: Any, send: Any) -> None:
    raise RuntimeError("the master process serves no requests")


class _Application(BaseApplication):  # type: ignore[misc]
    def __init__(
        self,
        sock: socket.socket,
        options: ServeOptions,
        ready_pipe: tuple[int, int],
        on_ready: Callable[[], None] | None,
    ) -> None:
        self.sock = sock
        self.options = options
        self.ready_pipe = ready_pipe
        self.on_ready = on_ready
        super().__init__(prog="sluicegate")

    def load_config(self) -> None:
        settings = gunicorn_settings(self.sock, self.options)
        for name, value in settings.items():
            self.cfg.set(name, value)
        self.cfg.sluicegate = (self.options, self.ready_pipe[1])  # read by the workers

    def load(self) -> Any:
        # The master imported the code already (`server._preload`); each worker builds its own
        # app after the fork, so no store, socket or thread is shared between processes.
        return _never_called

    def run(self) -> None:
        try:
            _Arbiter(self).run()
        except RuntimeError as exc:
            logging.getLogger("sluicegate.server").error("%s", exc)
            sys.exit(1)


class _Arbiter(Arbiter):  # type: ignore[misc]
    def __init__(self, app: _Application) -> None:
        super().__init__(app)
        self._backoff_s = 0.0
        self._respawn_at = 0.0
        self._sock = app.sock
        self._ready_read = app.ready_pipe[0]
        self._started = 0  # workers that reported their start-up done
        self._on_ready = app.on_ready
        self._announced = False
        self._stopping = False

    def stop(self, graceful: bool = True) -> None:
        self._stopping = True
        super().stop(graceful)

    def start(self) -> None:
        """Listen on the socket the operator step bound (the banner names it) instead of binding."""
        kind = gunicorn_sock.TCP6Socket if self._sock.family == socket.AF_INET6 else gunicorn_sock.TCPSocket
        self.LISTENERS = [kind(self._sock.getsockname(), self.cfg, self.log, fd=os.dup(self._sock.fileno()))]
        super().start()

    def wait_for_signals(self, timeout: float = 1.0) -> list[int]:
        """gunicorn's, looking at the workers' readiness more often until all have started."""
        self._read_ready()
        if not self._announced:
            timeout = min(timeout, 0.05)
        return list(super().wait_for_signals(timeout))

    def _read_ready(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while data := os.read(self._ready_read, 4096):
                self._started += len(data)
        if not self._announced and self._started >= self.num_workers:
            self._announced = True
            if self._on_ready is not None:
                self._on_ready()

    def handle_int(self) -> None:
        """Ctrl-C stops gracefully, as SIGTERM does; a second one asks for the quick stop."""
        raise StopIteration

    def spawn_worker(self) -> int:
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            return int(super().spawn_worker())
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)

    def manage_workers(self) -> None:
        if len(self.WORKERS) < self.num_workers and time.monotonic() < self._respawn_at:
            return
        super().manage_workers()

    def worker_died(self, lived_s: float) -> None:
        if self._stopping:
            return
        if lived_s >= SHORT_LIFE_S:
            self._backoff_s = 0.0
            return
        self._backoff_s = min(MAX_BACKOFF_S, max(1.0, self._backoff_s * 2))
        self._respawn_at = time.monotonic() + self._backoff_s
        self.log.warning(
            "a worker died %.1f s after it started; the next starts in %.0f s", lived_s, self._backoff_s
        )


def _pre_fork(arbiter: Any, worker: Any) -> None:
    worker.born_at = time.monotonic()


def _child_exit(arbiter: Any, worker: Any) -> None:
    from sluicegate.observability.metrics import mark_process_dead

    mark_process_dead(worker.pid)
    if isinstance(arbiter, _Arbiter):
        arbiter.worker_died(time.monotonic() - getattr(worker, "born_at", 0.0))


class _Log(glogging.Logger):  # type: ignore[misc]
    """gunicorn's messages through the root logger, in the gateway's format (text or JSON)."""

    def setup(self, cfg: Any) -> None:
        self.cfg = cfg
        self.loglevel = self.LOG_LEVELS.get(cfg.loglevel.lower(), logging.INFO)
        self._access_log_enabled = False
        for logger in (self.error_log, self.access_log):
            logger.handlers = []
            logger.propagate = True
        self.error_log.setLevel(self.loglevel)


class GatewayWorker(Worker):  # type: ignore[misc]
    """A gunicorn worker that runs the gateway under uvicorn (`GatewayServer`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._early_signals: list[int] = []

    def init_signals(self) -> None:
        for sig in self.SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        for sig in STOP_SIGNALS:  # until uvicorn's handlers are in place
            signal.signal(sig, self._early_signal)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)

    def _early_signal(self, signum: int, frame: Any) -> None:
        self._early_signals.append(signum)

    def run(self) -> None:
        from sluicegate.app import create_app_from_env

        options, ready_fd = self.cfg.sluicegate

        def ready() -> None:
            with contextlib.suppress(OSError):
                os.write(ready_fd, b"1")

        server: GatewayServer | None = None
        try:
            app = create_app_from_env()
            server = GatewayServer(
                uvicorn_config(app, options),
                app.state.gateway.shutdown,
                options.shutdown_timeout_s,
                early_signals=self._early_signals,
                heartbeat=(self.notify, max(0.5, self.timeout / 2)),
                on_ready=ready,
            )
            server.run(sockets=[listener.sock for listener in self.sockets])
        except Exception:
            self.log.exception("worker failed")
        if server is None or not server.started:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)
