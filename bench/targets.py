"""The targets under test: the mock upstream itself (direct), the bare byte-forwarding proxy (the
floor of a Python hop, bench/bare_proxy.py), sluicegate, LiteLLM proxy and Portkey.

Each starter returns a ``Target``; a target that cannot be started carries the reason in ``error``
so the report can show it as failed instead of the whole benchmark crashing.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from bench import litellm_env, portkey_env
from bench.processes import Managed, create_key, free_port, spawn, stop, wait_http_ok

DIRECT, BARE, SLUICEGATE, LITELLM, PORTKEY = "direct", "bare", "sluicegate", "litellm", "portkey"
ALL_TARGETS = (DIRECT, BARE, SLUICEGATE, LITELLM, PORTKEY)
BASELINE = "sluicegate-base"  # another source tree of sluicegate (--baseline-src), run side by side


@dataclass
class Target:
    name: str
    base_url: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    procs: list[Managed] = field(default_factory=list)
    error: str | None = None
    info: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def chat_url(self) -> str:
        return f"{self.base_url}/chat/completions"

    @property
    def root_pid(self) -> int:
        """The process tree whose memory and CPU are reported for this target (the server under test)."""
        return self.procs[0].pid

    def stop(self) -> None:
        for managed in reversed(self.procs):
            stop(managed)


def start_mock(workdir: Path, port: int | None = None) -> Target:
    port = port or free_port()
    managed = spawn(
        "mock",
        [sys.executable, "-m", "bench.mock_upstream", "--host", "127.0.0.1", "--port", str(port)],
        workdir / "mock.log",
    )
    target = Target(DIRECT, base_url=f"http://127.0.0.1:{port}/v1", procs=[managed])
    try:
        wait_http_ok(f"http://127.0.0.1:{port}/health", managed, timeout_s=20)
    except RuntimeError as exc:
        target.error = str(exc)
    return target


def start_bare(workdir: Path, mock_base_url: str, models: Sequence[str] = (), workers: int = 1) -> Target:
    """bench/bare_proxy.py in front of the mock: one process (uvicorn + uvloop + httptools, pooled
    aiohttp, no parsing, no auth); `models` and `workers` are not used (it forwards any request)."""
    del models, workers
    port = free_port()
    upstream = mock_base_url.removesuffix("/v1")
    cmd = [sys.executable, "-m", "bench.bare_proxy", "--upstream", upstream, "--port", str(port)]
    managed = spawn(BARE, cmd, workdir / "bare.log")
    target = Target(BARE, base_url=f"http://127.0.0.1:{port}/v1", procs=[managed])
    try:
        wait_http_ok(f"http://127.0.0.1:{port}/health", managed, timeout_s=30)
    except RuntimeError as exc:
        target.error = str(exc)
    return target


def _mock_models(models: Sequence[str]) -> list[str]:
    return sorted(set(models))


def sluicegate_config(
    mock_base_url: str, models: Sequence[str], entry: dict[str, object] | None = None
) -> dict[str, object]:
    return {
        "models": [
            {
                "name": m,
                "provider": "openai",
                "base_url": mock_base_url,
                "api_key": "dummy",
                "upstream_model": m,
                **(entry or {}),
            }
            for m in _mock_models(models)
        ]
    }


def start_sluicegate(
    workdir: Path,
    mock_base_url: str,
    models: Sequence[str],
    workers: int,
    name: str = SLUICEGATE,
    env: dict[str, str] | None = None,
    entry: dict[str, object] | None = None,
) -> Target:
    """Start sluicegate as deployed: auth on, a real data dir, a key created through its own CLI.
    `env` (e.g. a PYTHONPATH naming another source tree) lets two builds run side by side;
    `entry` adds fields to every model entry (`passthrough: false`)."""
    target = Target(name)
    exe = shutil.which("sluicegate")
    if exe is None:
        target.error = "`sluicegate` is not installed on PATH (pip install -e .)"
        return target
    data_dir = workdir / f"{name}-data"
    data_dir.mkdir(parents=True, exist_ok=True)
    config = workdir / f"{name}.yaml"
    config.write_text(yaml.safe_dump(sluicegate_config(mock_base_url, models, entry), sort_keys=False))
    try:
        key = create_key(exe, data_dir, timeout_s=60)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError, RuntimeError) as exc:
        detail = getattr(exc, "stderr", "") or ""
        target.error = f"`sluicegate keys create` failed: {exc} {detail[-500:]}"
        return target
    port = free_port()
    cmd = [exe, "serve", "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data_dir)]
    cmd += ["--config", str(config), "--workers", str(workers)]
    managed = spawn(name, cmd, workdir / f"{name}.log", env=env)
    return _ready(target, managed, port, key, "/health", timeout_s=60)


def _ready(
    target: Target, managed: Managed, port: int, key: str, health_path: str, timeout_s: float
) -> Target:
    """Record a started target's address and key, and wait until it answers its health check."""
    target.procs.append(managed)
    target.base_url = f"http://127.0.0.1:{port}/v1"
    target.headers = {"Authorization": f"Bearer {key}"}
    try:
        wait_http_ok(f"http://127.0.0.1:{port}{health_path}", managed, timeout_s=timeout_s)
    except RuntimeError as exc:
        target.error = str(exc)
    return target


def litellm_config(mock_base_url: str, models: Sequence[str], master_key: str) -> dict[str, object]:
    return {
        "model_list": [
            {
                "model_name": m,
                "litellm_params": {"model": f"openai/{m}", "api_base": mock_base_url, "api_key": "dummy"},
            }
            for m in _mock_models(models)
        ],
        "general_settings": {"master_key": master_key},
        "litellm_settings": {"drop_params": True, "telemetry": False},
    }


def start_litellm(workdir: Path, mock_base_url: str, models: Sequence[str], workers: int) -> Target:
    """Install (once) and start LiteLLM proxy with a master key, i.e. auth on like sluicegate."""
    target = Target(LITELLM)
    try:
        exe = litellm_env.ensure_litellm()
    except litellm_env.LiteLLMUnavailable as exc:
        target.error = str(exc)
        return target
    target.info["version"] = litellm_env.litellm_spec()
    master_key = f"sk-bench-{secrets.token_hex(12)}"
    config = workdir / "litellm.yaml"
    config.write_text(yaml.safe_dump(litellm_config(mock_base_url, models, master_key), sort_keys=False))
    port = free_port()
    cmd = [str(exe), "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--num_workers", str(workers)]
    env = {
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no network fetch of the price list at start-up
        "LITELLM_LOG": "ERROR",
        "LITELLM_TELEMETRY": "False",
        "DISABLE_SCHEMA_UPDATE": "True",
    }
    managed = spawn("litellm", cmd, workdir / "litellm.log", env=env)
    return _ready(target, managed, port, master_key, "/health/liveliness", timeout_s=180)


def portkey_headers(mock_base_url: str) -> dict[str, str]:
    """Portkey routes by headers: the OpenAI provider at a custom host, with the upstream's key."""
    return {
        "x-portkey-provider": "openai",
        "x-portkey-custom-host": mock_base_url,
        "Authorization": "Bearer dummy",
    }


def start_portkey(workdir: Path, mock_base_url: str, models: Sequence[str], workers: int) -> Target:
    """Install (once) and start Portkey's gateway as shipped: one Node process (its start script has
    no worker option, so ``workers`` is not used), no auth of its own, bound to 127.0.0.1."""
    del models, workers  # Portkey needs no model list: it forwards whatever model the request names
    target = Target(PORTKEY)
    try:
        portkey_env.ensure_portkey()
    except portkey_env.PortkeyUnavailable as exc:
        target.error = str(exc)
        return target
    node = portkey_env.node_executable()
    assert node is not None  # ensure_portkey checked it
    target.info["version"] = portkey_env.describe()
    port = free_port()
    managed = spawn("portkey", portkey_env.command(node, port), workdir / "portkey.log")
    _ready(target, managed, port, "dummy", "/", timeout_s=60)
    target.headers = portkey_headers(mock_base_url)
    return target
