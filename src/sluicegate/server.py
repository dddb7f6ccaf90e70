"""Runs the app: uvicorn in this process for one worker, under gunicorn's master for several.

Several workers run under gunicorn with `preload`: the master imports the application code
(and freezes it out of the garbage collector's reach) before it forks, so those pages stay
shared, and our worker class (`sluicegate.workers`) runs uvicorn in each worker. gunicorn's
arbiter brings what a hand-written supervisor gets wrong: signals are queued and handled in
its main loop, every worker has a heartbeat (one whose event loop stalls for
`server.worker_timeout_s` is killed and replaced), a worker that cannot boot halts the
gateway. On top of it (`sluicegate.workers`): Ctrl-C stops gracefully like SIGTERM, the stop
signals are blocked across each fork so none is lost, and a worker that keeps dying soon
after it started is restarted with a growing delay.

Every worker, and the single in-process server, stops the same way (`GatewayServer`): the
first SIGTERM or Ctrl-C stops accepting connections and lets the requests in flight finish
for `server.shutdown_timeout_s`; then each one still open ends with its door's error event
and terminator (a 503 if it had sent nothing). A second Ctrl-C (or SIGQUIT) ends them at
once. The process exits 0 without a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import math
import os
import shutil
import signal
import socket
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import FrameType
from typing import Any

import uvicorn

from sluicegate.http.header_timeout import with_header_timeout
from sluicegate.http.shutdown import Shutdown
from sluicegate.observability import logs

log = logging.getLogger("sluicegate.server")
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT)
BACKSTOP_S = 3.0  # past our own deadline, uvicorn cancels what is left


@dataclass(frozen=True, slots=True)
class ServeOptions:
    workers: int = 1
    log_level: str = "info"
    log_format: logs.LogFormat = "text"
    shutdown_timeout_s: float = 10.0
    worker_timeout_s: float = 30.0
    header_timeout_s: float = 10.0


def uvicorn_config(app: Any, options: ServeOptions) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        loop="uvloop",
        http=with_header_timeout(options.header_timeout_s),  # httptools, with a deadline on headers
        log_level=options.log_level,
        log_config=None,  # our own format (text or JSON), set up by `logs.configure`
        access_log=False,  # the gateway writes its own access line per request
        lifespan="on",
        timeout_graceful_shutdown=math.ceil(options.shutdown_timeout_s + BACKSTOP_S),
    )


class GatewayServer(uvicorn.Server):
    """uvicorn's server with the gateway's way of stopping (see the module docstring)."""

    def __init__(
        self,
        config: uvicorn.Config,
        shutdown: Shutdown,
        timeout_s: float,
        early_signals: list[int] | None = None,
        heartbeat: tuple[Callable[[], None], float] | None = None,
        on_ready: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(config)
        self._on_ready = on_ready
        self._shutdown = shutdown
        self._timeout_s = timeout_s
        self._early_signals = early_signals if early_signals is not None else []
        self._heartbeat = heartbeat
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ended = False

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        beating = asyncio.ensure_future(self._beat()) if self._heartbeat is not None else None
        try:
            await super().serve(sockets)
        finally:
            if beating is not None:
                beating.cancel()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            settle_heap()
        if self.started and self._on_ready is not None:
            self._on_ready()

    async def _beat(self) -> None:
        """A gunicorn worker's heartbeat, from the event loop itself: a stalled loop stops it."""
        assert self._heartbeat is not None
        notify, every_s = self._heartbeat
        while True:
            notify()
            await asyncio.sleep(every_s)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """uvicorn's, without raising the signal again after a clean stop (that re-raise made
        every Ctrl-C end in a KeyboardInterrupt traceback), and with SIGQUIT."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        original = {sig: signal.signal(sig, self.handle_exit) for sig in STOP_SIGNALS}
        for sig in self._early_signals:  # received before these handlers were in place
            self.handle_exit(sig, None)
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """First SIGTERM/SIGINT: stop gracefully. Ctrl-C once stopping, or SIGQUIT (gunicorn's
        quick stop): end the requests in flight now; one more: stop waiting for anything. A
        SIGTERM never hurries the stop (gunicorn's master sends one after a Ctrl-C)."""
        at_once = sig == signal.SIGQUIT or (sig == signal.SIGINT and self.should_exit)
        if at_once:
            if self._ended:
                self.force_exit = True
            self._ended = True
            if self._loop is not None:
                self._loop.call_soon_threadsafe(self._end_now)
        self.should_exit = True

    def _end_now(self) -> None:
        if self._shutdown.in_flight:
            log.warning("ending %d request(s) in flight now", self._shutdown.in_flight)
        self._shutdown.end()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self._shutdown.begin(self._timeout_s)
        if self._shutdown.in_flight and not self._shutdown.over:
            log.info(
                "stopping: %d request(s) in flight may finish within %.0f s (Ctrl-C again ends them now)",
                self._shutdown.in_flight,
                self._timeout_s,
            )
        await super().shutdown(sockets)


GC_GEN0_THRESHOLD = 7000  # CPython's default is 700


def settle_heap() -> None:
    """Once the gateway has started: what start-up built (modules, config, providers, the
    app) lives until the process ends, so it is moved out of the collector's way (`gc.freeze`),
    and the youngest generation is collected every 7,000 allocations instead of 700. A proxied
    stream allocates a few hundred short-lived objects, so with the default the collector ran
    every few requests; measured with `python -m bench.hop`, see bench/results/hop.md."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, older, oldest)


def run(sock: socket.socket, options: ServeOptions, on_ready: Callable[[], None] | None = None) -> int:
    """Serve on an already bound socket; `on_ready` runs once the gateway answers requests
    (every worker started)."""
    logs.configure(options.log_level, options.log_format)
    if options.workers <= 1:
        return _run_single(sock, options, on_ready)
    from sluicegate.workers import run_prefork

    with _metrics_dir():
        _preload()
        return run_prefork(sock, options, on_ready)


def _run_single(sock: socket.socket, options: ServeOptions, on_ready: Callable[[], None] | None) -> int:
    from sluicegate.app import create_app_from_env

    app = create_app_from_env()
    server = GatewayServer(
        uvicorn_config(app, options), app.state.gateway.shutdown, options.shutdown_timeout_s, on_ready=on_ready
    )
    server.run(sockets=[sock])
    # The server has stopped; a Ctrl-C while the interpreter winds down ends it at once.
    signal.signal(signal.SIGINT, lambda signum, frame: os._exit(130))
    return 0 if server.started else 3


@contextlib.contextmanager
def _metrics_dir() -> Iterator[None]:
    """The directory where every worker writes its metric values (Prometheus multiprocess
    mode); set before anything imports prometheus_client, emptied of a previous run's files."""
    from sluicegate.observability.metrics import MULTIPROC_ENV, fresh_multiprocess_dir

    given = os.environ.get(MULTIPROC_ENV)
    if given:
        os.makedirs(given, exist_ok=True)
        fresh_multiprocess_dir(given)
        yield
        return
    path = tempfile.mkdtemp(prefix="sluicegate-metrics-")
    os.environ[MULTIPROC_ENV] = path
    try:
        yield
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _preload() -> None:
    """Import what every worker needs before forking, so the pages are shared."""
    import prometheus_client  # noqa: F401

    import sluicegate.app
    import sluicegate.providers.local.provider
    import sluicegate.providers.openai.provider  # noqa: F401

    gc.collect()
    gc.freeze()
