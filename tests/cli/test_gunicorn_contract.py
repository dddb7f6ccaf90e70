"""What `workers.py` takes from gunicorn beyond its public API (hooks, config, the worker class),
checked against the installed gunicorn, so an upgrade that moves it fails here by name rather
than as a master that never prints its banner or a stop signal lost during a fork.

Why these internals: gunicorn has no hook in the master after a fork (the stop signals blocked
across it must be unblocked there), none that delays a respawn (the backoff for a worker that
keeps dying), none for "every worker has booted" (the banner with the first key waits for it),
and binds its own sockets unless `LISTENERS` is filled before `start` (the operator step binds
first, to report a port in use in one line). The behaviour itself is tested through a real
master in test_serve_workers.py, test_shutdown.py and test_workers.py.
"""

from __future__ import annotations

import inspect
import os
import socket
from typing import Any

import pytest
from gunicorn import sock as gunicorn_sock
from gunicorn.arbiter import Arbiter
from gunicorn.workers.base import Worker

from sluicegate.workers import GatewayWorker, _Arbiter


def parameters(function: Any) -> list[str]:
    return list(inspect.signature(function).parameters)


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        ("start", ["self"]),
        ("stop", ["self", "graceful"]),
        ("wait_for_signals", ["self", "timeout"]),
        ("handle_int", ["self"]),
        ("spawn_worker", ["self"]),
        ("manage_workers", ["self"]),
    ],
)
def test_the_arbiter_methods_overridden_keep_their_signatures(method: str, expected: list[str]) -> None:
    assert method in _Arbiter.__dict__, f"workers.py no longer overrides {method}: update this list"
    assert parameters(getattr(Arbiter, method)) == expected


def test_the_arbiter_loop_calls_what_is_overridden() -> None:
    loop = inspect.getsource(Arbiter.run)
    assert "self.wait_for_signals(" in loop  # readiness is read between signals
    assert "self.manage_workers()" in loop  # the respawn backoff sits there
    assert "self.spawn_worker()" in inspect.getsource(Arbiter.spawn_workers)
    assert "os.fork()" in inspect.getsource(Arbiter.spawn_worker)  # the fork the signals are blocked around
    assert "self.cfg.pre_fork(" in inspect.getsource(Arbiter.spawn_worker)
    assert "self.cfg.child_exit(" in inspect.getsource(Arbiter)  # a dead worker's age and gauges


def test_start_keeps_listeners_set_before_it() -> None:
    assert "if not self.LISTENERS" in inspect.getsource(Arbiter.start)
    assert isinstance(Arbiter.LISTENERS, list) and isinstance(Arbiter.WORKERS, dict)
    assert Arbiter.WORKER_BOOT_ERROR == 3


def test_a_listener_wraps_a_bound_socket_by_its_descriptor() -> None:
    bound = socket.socket()
    bound.bind(("127.0.0.1", 0))
    bound.listen()
    try:

        class Config:
            backlog = 16
            reuse_port = False
            is_ssl = False

        listener = gunicorn_sock.TCPSocket(bound.getsockname(), Config(), _Log(), fd=os.dup(bound.fileno()))
        assert listener.sock.getsockname() == bound.getsockname()
        listener.close()
    finally:
        bound.close()


class _Log:
    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


def test_the_worker_class_hooks_used_exist() -> None:
    assert "init_signals" in GatewayWorker.__dict__ and "run" in GatewayWorker.__dict__
    assert parameters(Worker.init_signals) == ["self"]
    assert "self.init_signals()" in inspect.getsource(Worker.init_process)
    assert hasattr(Worker, "notify") and isinstance(Worker.SIGNALS, list)


def test_every_setting_the_master_passes_is_one_gunicorn_knows() -> None:
    from gunicorn.config import KNOWN_SETTINGS

    from sluicegate.server import ServeOptions
    from sluicegate.workers import gunicorn_settings

    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        names = set(gunicorn_settings(bound, ServeOptions(workers=2)))
    assert names <= {setting.name for setting in KNOWN_SETTINGS}, names - {s.name for s in KNOWN_SETTINGS}
