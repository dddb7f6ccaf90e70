"""An operator's mistakes end in one line naming what to fix and a non-zero exit, never a
traceback; the CLI explains itself; start-up tells the truth."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.server import free_port, start_gateway


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICEGATE_")}
    return subprocess.run(
        [sys.executable, "-m", "sluicegate.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd="/",
    )


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("sluicegate: ")]
    assert len(errors) == 1, result.stderr
    return errors[0]


@pytest.mark.parametrize("command", [["serve"], ["keys", "list"], ["keys", "create"]])
def test_a_data_dir_that_is_a_file(tmp_path: Path, command: list[str]) -> None:
    afile = tmp_path / "data"
    afile.write_text("")
    line = one_line_error(run_cli(*command, "--data-dir", str(afile)))
    assert f"the data dir {afile} is a file" in line and "--data-dir" in line


@pytest.mark.parametrize("command", [["serve"], ["keys", "create", "--name", "x"]])
def test_a_data_dir_that_cannot_be_created(command: list[str]) -> None:
    # /proc refuses new directories even to root
    line = one_line_error(run_cli(*command, "--data-dir", "/proc/sluicegate-test/data"))
    assert "cannot create the data dir /proc/sluicegate-test/data" in line


def test_serve_on_a_data_dir_that_is_not_writable() -> None:
    # a directory no one may write in, root included
    line = one_line_error(run_cli("serve", "--data-dir", "/proc/self"))
    assert "the data dir /proc/self is not writable" in line


def test_keys_on_a_database_that_cannot_be_written(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert run_cli("keys", "create", "--name", "a", "--data-dir", str(data)).returncode == 0
    db = data / "sluicegate.db"
    for leftover in data.glob("sluicegate.db-*"):
        leftover.unlink()
    # replace the database by something SQLite cannot open, whoever runs the test
    db.unlink()
    db.mkdir()
    line = one_line_error(run_cli("keys", "create", "--name", "b", "--data-dir", str(data)))
    assert "database" in line and str(data) in line


def test_bogus_log_level_names_the_choices(tmp_path: Path) -> None:
    result = run_cli("serve", "--log-level", "bogus", "--data-dir", str(tmp_path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "invalid choice: 'bogus'" in result.stderr and "'debug'" in result.stderr


def test_a_missing_model_file_is_named_before_anything_starts(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("models:\n  - name: mine\n    provider: local\n    path: /nowhere/model.gguf\n")
    result = run_cli("serve", "--config", str(config), "--data-dir", str(tmp_path / "d"))
    line = one_line_error(result)
    assert "/nowhere/model.gguf does not exist" in line and "'mine'" in line
    assert "ready" not in result.stdout and "sk-" not in result.stdout  # no banner, no key


def test_a_model_that_cannot_load_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_text("not a model")
    config = tmp_path / "c.yaml"
    config.write_text(f"models:\n  - name: mine\n    provider: local\n    path: {bad}\n")
    port = free_port()
    result = run_cli("serve", "--config", str(config), "--data-dir", str(tmp_path / "d"), "--port", str(port))
    assert result.returncode == 3
    assert "Traceback" not in result.stderr
    assert "sluicegate cannot start" in result.stderr and str(bad) in result.stderr
    assert "ready" not in result.stdout


def test_port_in_use_prints_no_banner_and_makes_no_key(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_cli("serve", "--port", str(port), "--data-dir", str(tmp_path / "d"))
    line = one_line_error(result)
    assert "already in use" in line and "--port" in line
    assert result.stdout == ""
    keys = run_cli("keys", "list", "--data-dir", str(tmp_path / "d"))
    assert keys.returncode == 0 and "sk-" not in keys.stdout and len(keys.stdout.splitlines()) == 1


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("server:\n  port: 8080\nmodels:\n  - name: a\n    provider: openai\n", ", line 4: models[0].base_url: is required"),
        ("models:\n  - name: a\n    provider: local\n    flavour: x\n", ", line 4: models[0].flavour: unknown setting"),
        ("models:\n  - name: a\n   provider: local\n", ", line 3, column 4: invalid YAML"),
        ("models: []\n", "no models are configured"),
        ("server:\n  workers: 0\n", ", line 2: server.workers: Input should be greater than or equal to 1"),
        ("server:\n  port: 70000\n", ", line 2: server.port: Input should be less than or equal to 65535"),
    ],
)
def test_config_errors_name_file_and_line(tmp_path: Path, content: str, expected: str) -> None:
    config = tmp_path / "sluicegate.yaml"
    config.write_text(content)
    result = run_cli("serve", "--config", str(config), "--data-dir", str(tmp_path / "d"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "pydantic" not in result.stderr
    assert f"sluicegate: {config}" in result.stderr and expected in result.stderr


def test_each_of_several_config_problems_is_a_line_of_its_own(tmp_path: Path) -> None:
    config = tmp_path / "sluicegate.yaml"
    config.write_text("server:\n  workers: 0\n  port: 70000\n")
    result = run_cli("serve", "--config", str(config), "--data-dir", str(tmp_path / "d"))
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 2 and all(line.startswith(f"sluicegate: {config}, line ") for line in lines)


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        (["--workers", "0"], "argument --workers: 0 is out of range; use 1 to 1024"),
        (["--workers", "-1"], "argument --workers: -1 is out of range; use 1 to 1024"),
        (["--port", "99999"], "argument --port: 99999 is out of range; use 0 to 65535"),
        (["--port", "http"], "argument --port: 'http' is not a whole number"),
    ],
)
def test_serve_options_out_of_range_are_refused(tmp_path: Path, option: list[str], expected: str) -> None:
    result = run_cli("serve", *option, "--data-dir", str(tmp_path / "d"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1] == f"sluicegate serve: error: {expected}"


def test_an_unset_variable_is_warned_about_once(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("models:\n  - name: a\n    provider: openai\n    base_url: http://127.0.0.1:9/v1\n    api_key: ${SG_NOT_SET_ANYWHERE}\n")
    result = run_cli("keys", "list", "--config", str(config), "--data-dir", str(tmp_path / "d"))
    assert result.returncode == 0
    assert result.stderr.count("SG_NOT_SET_ANYWHERE") == 1


def test_version_and_help() -> None:
    from importlib.metadata import version

    result = run_cli("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"sluicegate {version('sluicegate')}"
    top = run_cli("--help").stdout
    assert "gateway" in top and "serve" in top and "keys" in top
    serve = run_cli("serve", "--help").stdout
    for option in ("--host", "--port", "--workers", "--log-level", "--data-dir", "--config"):
        assert option in serve
    assert "default: info" in serve and "127.0.0.1" in serve and "8080" in serve
    flat = " ".join(serve.split())  # each default said once, and none where there is none
    assert "(default: server.port of the config, 8080) --workers" in flat
    assert "(default: None)" not in flat and "(default: False)" not in flat
    keys = run_cli("keys")
    assert keys.returncode == 0 and "create" in keys.stdout and "revoke" in keys.stdout
    assert "required" not in keys.stderr


def test_keys_names_are_unique_and_revoke_takes_id_name_or_secret(tmp_path: Path) -> None:
    data = ["--data-dir", str(tmp_path)]
    first = run_cli("keys", "create", *data)
    second = run_cli("keys", "create", *data)
    assert first.returncode == second.returncode == 0
    listing = run_cli("keys", "list", *data).stdout
    assert " key-1 " in listing and " key-2 " in listing  # not silently named alike
    named = run_cli("keys", "create", "--name", "alice", *data)
    assert named.returncode == 0
    line = one_line_error(run_cli("keys", "create", "--name", "alice", *data))
    assert "'alice' exists already" in line
    assert run_cli("keys", "revoke", "alice", *data).returncode == 0
    secret = second.stdout.strip().splitlines()[-1]
    revoked = run_cli("keys", "revoke", secret, *data)
    assert revoked.returncode == 0 and secret not in revoked.stdout + revoked.stderr
    again = run_cli("keys", "revoke", secret, *data)
    assert again.returncode == 1 and secret not in again.stderr and secret[:10] in again.stderr


def test_data_dir_and_database_are_owner_only(tmp_path: Path) -> None:
    data = tmp_path / "d"
    assert run_cli("keys", "create", "--name", "x", "--data-dir", str(data)).returncode == 0
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert stat.S_IMODE((data / "sluicegate.db").stat().st_mode) == 0o600


def test_banner_lists_models_with_providers_and_aliases_once_listening(tmp_path: Path) -> None:
    gateway = start_gateway(tmp_path / "d")
    try:
        log = gateway.log()
        ready = next(line for line in log.splitlines() if line.startswith("sluicegate is ready on "))
        assert ready == f"sluicegate is ready on {gateway.v1}"
        model_line = next(line for line in log.splitlines() if "smollm2-135m-instruct" in line and "local" in line)
        assert "aliases: gpt-4o, gpt-4o-mini" in model_line
    finally:
        gateway.stop()


def test_all_interfaces_banner_shows_a_url_a_browser_can_open(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "sluicegate.cli", "serve", "--host", "0.0.0.0", "--port", str(port),
         "--data-dir", str(tmp_path / "d")],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd="/",
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.startswith(f"sluicegate is ready on http://127.0.0.1:{port}/v1 (listening on all interfaces")
        assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200
    finally:
        process.terminate()
        process.wait(15)


def test_forgetting_v1_is_told_how_to_fix_it(tmp_path: Path) -> None:
    gateway = start_gateway(tmp_path / "d")
    try:
        response = httpx.post(gateway.base_url + "/chat/completions", json={}, timeout=5)
        assert response.status_code == 404
        assert "/v1/chat/completions" in response.json()["error"]["message"]
    finally:
        gateway.stop()
