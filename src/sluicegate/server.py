"""Runs the app under uvicorn: in this process for one worker, pre-forked for several.

Several workers are forked from one parent that has already imported the application code
(and frozen it out of the garbage collector's reach), so its pages stay shared between the
workers instead of each worker importing its own copy as uvicorn's spawn-based manager does.
The parent only supervises: it forwards SIGTERM/SIGINT, and restarts a worker that dies after
it reported itself started (through a pipe), but stops the whole gateway when a worker fails
during start-up, where a restart would only fail again.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import select
import signal
import socket
import sys
from collections.abc import Callable
from types import FrameType

import uvicorn

log = logging.getLogger("sluicegate.server")
APP_FACTORY = "sluicegate.app:create_app_from_env"


def uvicorn_config(host: str, port: int, log_level: str) -> uvicorn.Config:
    return uvicorn.Config(
        APP_FACTORY,
        factory=True,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=5,
    )


def run(sock: socket.socket, workers: int, log_level: str, on_ready: Callable[[], None] | None = None) -> int:
    """Serve on an already bound socket; `on_ready` runs once the gateway answers requests."""
    host, port = sock.getsockname()[:2]
    config = uvicorn_config(host, port, log_level)
    if workers <= 1:
        server = _Server(config, on_ready)
        server.run(sockets=[sock])
        return 0 if server.started else 3
    _preload()
    return _supervise(config, sock, workers, on_ready)


def _preload() -> None:
    """Import what every worker needs before forking, so the pages are shared."""
    import sluicegate.app
    import sluicegate.providers.local.provider
    import sluicegate.providers.openai.provider  # noqa: F401

    gc.collect()
    gc.freeze()


class _Server(uvicorn.Server):
    """A uvicorn server that says when its start-up (lifespan) succeeded."""

    def __init__(self, config: uvicorn.Config, on_ready: Callable[[], None] | None) -> None:
        super().__init__(config)
        self._on_ready = on_ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and self._on_ready is not None:
            self._on_ready()


class _Worker(uvicorn.Server):
    """A uvicorn server that tells the supervisor once its start-up (lifespan) succeeded."""

    def __init__(self, config: uvicorn.Config, ready_fd: int) -> None:
        super().__init__(config)
        self._ready_fd = ready_fd

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            os.write(self._ready_fd, b"1")


def _spawn(config: uvicorn.Config, sock: socket.socket) -> tuple[int, int]:
    """Fork a worker; returns its pid and the read end of its readiness pipe."""
    ready_read, ready_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the worker
        os.close(ready_read)
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, signal.SIG_DFL)
        code = 0
        try:
            _Worker(config, ready_write).run(sockets=[sock])
        except SystemExit as exc:  # uvicorn's own exit (a failed start-up), already explained
            code = exc.code if isinstance(exc.code, int) else 1
        except KeyboardInterrupt:
            code = 0
        except BaseException:
            log.exception("worker %d failed", os.getpid())
            code = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    os.close(ready_write)
    os.set_blocking(ready_read, False)
    return pid, ready_read


def _reported_ready(ready_read: int) -> bool:
    try:
        return bool(os.read(ready_read, 1))
    except BlockingIOError:
        return False
    finally:
        os.close(ready_read)


def _wait_all_ready(pipes: list[int], timeout: float = 600.0) -> bool:
    """Whether every worker reported its start-up done (False when one failed first)."""
    waiting = set(pipes)
    while waiting:
        readable, _, _ = select.select(list(waiting), [], [], timeout)
        if not readable:
            return False
        for fd in readable:
            try:
                data = os.read(fd, 1)
            except BlockingIOError:
                continue
            if not data:
                return False  # the worker exited without reporting
            waiting.discard(fd)
    return True


def _supervise(
    config: uvicorn.Config, sock: socket.socket, workers: int, on_ready: Callable[[], None] | None = None
) -> int:
    started: dict[int, int] = {}  # worker pid -> read end of its readiness pipe
    ready: set[int] = set()  # workers whose start-up succeeded
    stopping = False
    exit_code = 0

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for pid in started:
            _kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for _ in range(workers):
        pid, pipe = _spawn(config, sock)
        started[pid] = pipe
    if _wait_all_ready(list(started.values())):
        ready.update(started)
        if on_ready is not None:
            on_ready()
    while started:
        pid, status = os.wait()
        if pid not in started:
            continue
        pipe = started.pop(pid)
        was_ready = _reported_ready(pipe) or pid in ready
        ready.discard(pid)
        if stopping:
            continue
        code = os.waitstatus_to_exitcode(status)
        if not was_ready:
            log.error("worker %d exited during start-up (%d); stopping the gateway", pid, code)
            exit_code = 3
            stop(signal.SIGTERM, None)
            continue
        log.warning("worker %d exited (%d); starting another", pid, code)
        pid, pipe = _spawn(config, sock)
        started[pid] = pipe
    sock.close()
    return exit_code


def _kill(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)
