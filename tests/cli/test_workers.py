"""The pre-fork master's own rules on top of gunicorn: restart backoff, Ctrl-C is graceful."""

from __future__ import annotations

import logging
import time
from types import SimpleNamespace

import pytest

from sluicegate.workers import MAX_BACKOFF_S, SHORT_LIFE_S, _Arbiter


def master() -> SimpleNamespace:
    return SimpleNamespace(_stopping=False, _backoff_s=0.0, _respawn_at=0.0, log=logging.getLogger("test"))


def test_a_worker_dying_young_again_and_again_waits_longer_each_time() -> None:
    arbiter = master()
    waits = []
    for _ in range(8):
        _Arbiter.worker_died(arbiter, lived_s=0.5)
        waits.append(arbiter._backoff_s)
        assert arbiter._respawn_at > time.monotonic()
    assert waits[:6] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0]
    assert max(waits) == MAX_BACKOFF_S
    _Arbiter.worker_died(arbiter, lived_s=SHORT_LIFE_S + 1)  # a worker that served a while
    assert arbiter._backoff_s == 0.0


def test_no_backoff_while_stopping() -> None:
    arbiter = master()
    arbiter._stopping = True
    _Arbiter.worker_died(arbiter, lived_s=0.1)
    assert arbiter._backoff_s == 0.0 and arbiter._respawn_at == 0.0


def test_ctrl_c_is_a_graceful_stop() -> None:
    with pytest.raises(StopIteration):  # what gunicorn's SIGTERM handler raises: stop gracefully
        _Arbiter.handle_int(master())
