"""Runs `sluicegate serve` as a real process on a free port, as a user would."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml

LOCAL_MODEL = "smollm2-135m-instruct"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cli(*args: str, data_dir: Path) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "sluicegate.cli", *args, "--data-dir", str(data_dir)],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result.stdout


@dataclass
class Gateway:
    base_url: str
    api_key: str
    data_dir: Path
    process: subprocess.Popen[bytes]
    log_path: Path
    model: str = LOCAL_MODEL

    @property
    def v1(self) -> str:
        return self.base_url + "/v1"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def start_gateway(
    data_dir: Path,
    config: dict[str, object] | None = None,
    startup_s: float = 30,
    extra_args: list[str] | None = None,
    new_session: bool = False,
    stderr_path: Path | None = None,
) -> Gateway:
    """`new_session`: the gateway leads its own process group, so a test can signal the group
    as a terminal's Ctrl-C does (the master and its workers at once). `stderr_path`: the logs
    (stderr) go there, apart from stdout (the banner)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    args = [sys.executable, "-m", "sluicegate.cli", "serve", "--port", str(port), "--data-dir", str(data_dir)]
    args += extra_args or []
    if config is not None:
        config_path = data_dir / "sluicegate.yaml"
        config_path.write_text(yaml.safe_dump(config))
        args += ["--config", str(config_path)]
    log_path = data_dir / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICEGATE_")}
    with log_path.open("wb") as log, (stderr_path or log_path).open("ab") as errors:
        process = subprocess.Popen(
            args,
            stdout=log,
            stderr=errors if stderr_path is not None else subprocess.STDOUT,
            env=env,
            start_new_session=new_session,
        )
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + startup_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gateway exited: {log_path.read_text()}")
        try:
            if httpx.get(base_url + "/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    else:
        process.kill()
        raise RuntimeError(f"gateway did not start: {log_path.read_text()}")
    first_key = next(
        (line.strip() for line in log_path.read_text().splitlines() if line.strip().startswith("sk-")), None
    )
    api_key = (
        first_key or cli("keys", "create", "--name", "tests", data_dir=data_dir).strip().splitlines()[-1]
    )
    return Gateway(base_url=base_url, api_key=api_key, data_dir=data_dir, process=process, log_path=log_path)
