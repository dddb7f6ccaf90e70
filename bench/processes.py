"""Start, probe, measure and stop the server processes under test.

Every server runs in its own session (process group) so it can be stopped with everything it forked
(uvicorn/gunicorn workers) by its own id, and its resource use is read from its whole process tree.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import psutil


@dataclass
class Managed:
    """A server process we started, with the log its output goes to."""

    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def create_key(exe: str, data_dir: Path, timeout_s: float = 120) -> str:
    """A fresh sluicegate API key: `sluicegate keys create` prints it alone on its last line."""
    created = subprocess.run(
        [exe, "keys", "create", "--name", "bench", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=True,
    )
    lines = [line.strip() for line in created.stdout.splitlines() if line.strip()]
    if not lines or not lines[-1].startswith("sk-"):
        raise RuntimeError(
            f"`sluicegate keys create` printed no sk- key on its last line: {created.stdout[-300:]!r}"
        )
    return lines[-1]


def spawn(name: str, cmd: list[str], log_path: Path, env: dict[str, str] | None = None) -> Managed:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
    return Managed(name, proc, log_path)


def stop(managed: Managed, grace_s: float = 8.0) -> None:
    """SIGTERM the process group we created, then SIGKILL whatever is left after ``grace_s``."""
    proc = managed.proc
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace_s)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # workers may outlive their parent
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=2)


def wait_http_ok(url: str, managed: Managed, timeout_s: float, headers: dict[str, str] | None = None) -> None:
    """Poll ``url`` until it answers 200; fail fast (with the log tail) if the process died."""
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        if managed.proc.poll() is not None:
            raise RuntimeError(f"{managed.name} exited with {managed.proc.returncode}: {managed.log_tail()}")
        try:
            req = urllib.request.Request(url, headers=headers or {})
            with urllib.request.urlopen(req, timeout=2) as resp:
                if resp.status == 200:
                    return
                last = f"HTTP {resp.status}"
        except (urllib.error.URLError, OSError) as exc:
            last = str(exc)
        time.sleep(0.25)
    raise RuntimeError(
        f"{managed.name} not ready at {url} after {timeout_s:.0f}s ({last}): {managed.log_tail()}"
    )


def _tree(pid: int) -> list[psutil.Process]:
    import psutil  # imported here so the unit tests do not need psutil

    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def tree_rss(pid: int) -> int:
    """Resident set size summed over the process tree, in bytes (shared pages count once per process)."""
    import psutil

    total = 0
    for proc in _tree(pid):
        with contextlib.suppress(psutil.Error):
            total += proc.memory_info().rss
    return total


def tree_pss(pid: int) -> int:
    """Proportional set size summed over the tree: shared pages split between the processes sharing
    them, so forked workers are not counted several times (reported next to the RSS sum)."""
    import psutil

    total = 0
    for proc in _tree(pid):
        with contextlib.suppress(psutil.Error, AttributeError):
            total += proc.memory_full_info().pss
    return total


def tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds used so far by the live tree, including reaped children."""
    import psutil

    total = 0.0
    for proc in _tree(pid):
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            total += times.user + times.system + times.children_user + times.children_system
    return total


def tree_size(pid: int) -> int:
    return len(_tree(pid))


class RssSampler:
    """Samples the tree's RSS in a thread (every ``interval_s``; PSS every 5th time) and keeps the peaks."""

    def __init__(self, pid: int, interval_s: float = 0.1) -> None:
        self.pid = pid
        self.interval_s = interval_s
        self.peak = 0
        self.peak_pss = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss(self.pid))
            if self.samples % 5 == 0:
                self.peak_pss = max(self.peak_pss, tree_pss(self.pid))
            self.samples += 1
            self._stop.wait(self.interval_s)

    def __enter__(self) -> RssSampler:
        self.peak = tree_rss(self.pid)
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.peak = max(self.peak, tree_rss(self.pid))
