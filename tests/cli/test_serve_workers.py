"""`sluicegate serve` with several workers: pre-forked, supervised, stopped together."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx

from tests.support.openai_upstream import OpenAIUpstream
from tests.support.server import Gateway, start_gateway


def children(pid: int) -> set[int]:
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_for(predicate: object, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


def ask(gateway: Gateway) -> httpx.Response:
    return httpx.post(
        gateway.v1 + "/chat/completions",
        json={"model": "up", "messages": [{"role": "user", "content": "one two"}], "stream": True},
        headers={"Authorization": f"Bearer {gateway.api_key}"},
        timeout=10,
    )


def test_workers_are_forked_serve_and_stop_together(tmp_path: Path, upstream: OpenAIUpstream) -> None:
    config = {
        "server": {"workers": 2},
        "models": [{"name": "up", "provider": "openai", "base_url": upstream.base_url}],
    }
    gateway = start_gateway(tmp_path, config)
    try:
        parent = gateway.process.pid
        assert wait_for(lambda: len(children(parent)) == 2)
        workers = children(parent)
        for _ in range(6):
            response = ask(gateway)
            assert response.status_code == 200
            assert response.text.endswith("data: [DONE]\n\n")

        # A worker that dies after starting well is replaced, and the gateway keeps serving.
        victim = min(workers)
        os.kill(victim, signal.SIGKILL)
        assert wait_for(lambda: len(children(parent) - {victim}) == 2 and not alive(victim))
        assert ask(gateway).status_code == 200

        current = children(parent)
        gateway.process.send_signal(signal.SIGTERM)
        assert gateway.process.wait(15) == 0
        assert wait_for(lambda: not any(alive(pid) for pid in current))
    finally:
        gateway.stop()


def test_a_worker_failing_at_start_up_stops_the_gateway(tmp_path: Path) -> None:
    missing = tmp_path / "missing.gguf"
    config = {
        "server": {"workers": 2},
        "models": [{"name": "broken", "provider": "local", "path": str(missing)}],
    }
    config_path = tmp_path / "sluicegate.yaml"
    import subprocess
    import sys

    import yaml

    config_path.write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sluicegate.cli",
            "serve",
            "--port",
            "0",
            "--data-dir",
            str(tmp_path),
            "--config",
            str(config_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "missing.gguf" in result.stdout + result.stderr
