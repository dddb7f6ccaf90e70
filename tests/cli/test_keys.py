"""`sluicegate keys ...` and `sluicegate serve` as a user runs them, and the config file."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from sluicegate.providers.embedded.config import DEFAULT_EMBEDDINGS_MODEL, runtime_available
from sluicegate.settings import load_settings
from tests.support.server import Gateway, cli, start_gateway

SECRET = re.compile(r"^sk-[A-Za-z0-9_-]{20,}$")


def create_key(data_dir: Path, name: str) -> tuple[str, str]:
    """(key id, secret) of a new key, from the CLI's output."""
    out = cli("keys", "create", "--name", name, data_dir=data_dir)
    lines = out.rstrip("\n").split("\n")
    secret = lines[-1]
    assert SECRET.match(secret), out
    key_id = re.search(r"\bkey_[0-9a-f]+\b", out)
    assert key_id, out
    return key_id.group(0), secret


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sluicegate.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_create_prints_the_secret_alone_on_the_last_line(tmp_path: Path) -> None:
    out = cli("keys", "create", "--name", "x", data_dir=tmp_path)
    assert out.endswith("\n")
    last = out.rstrip("\n").split("\n")[-1]
    assert SECRET.match(last), out
    assert last == last.strip()
    # A script can take it with `| tail -n 1`; no other line carries it.
    assert out.count(last) == 1


def test_list_shows_names_and_hints_never_secrets(tmp_path: Path) -> None:
    first_id, first = create_key(tmp_path, "laptop")
    second_id, second = create_key(tmp_path, "ci-runner")
    listing = cli("keys", "list", data_dir=tmp_path)
    for key_id, name, secret in ((first_id, "laptop", first), (second_id, "ci-runner", second)):
        row = next(line for line in listing.splitlines() if key_id in line)
        assert name in row
        assert "active" in row
        assert secret not in listing
        assert secret[-4:] in row  # the hint: enough to recognise a key, not to use it
        assert len(secret) > 30
        # No long run of the secret leaks, in any position.
        assert not any(secret[i : i + 16] in listing for i in range(len(secret) - 15))


def test_secrets_are_not_stored_in_the_data_dir(tmp_path: Path) -> None:
    secrets = [create_key(tmp_path, f"k{i}")[1] for i in range(3)]
    files = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert any(path.suffix == ".db" for path in files), files
    blob = b"".join(path.read_bytes() for path in files)
    assert len(blob) > 1000
    for secret in secrets:
        assert secret.encode() not in blob
        assert secret[6:30].encode() not in blob  # not even its random part


def test_revoked_key_is_refused_by_a_running_gateway(gateway: Gateway) -> None:
    key_id, secret = create_key(gateway.data_dir, "to-revoke")
    models = gateway.v1 + "/models"
    with httpx.Client(headers={"Authorization": f"Bearer {secret}"}, timeout=10) as client:
        assert client.get(models).status_code == 200  # the gateway accepts a key made while it runs
        out = cli("keys", "revoke", key_id, data_dir=gateway.data_dir)
        assert key_id in out
        # the key table refreshes every few seconds; the deadline only ends a test that would hang
        deadline = time.monotonic() + 60
        while True:
            response = client.get(models)
            if response.status_code == 401:
                break
            assert response.status_code == 200
            assert time.monotonic() < deadline, "the revoked key still works after 60 s"
            time.sleep(0.1)
        assert response.json()["error"]["code"] == "invalid_api_key"
        assert secret not in response.text  # the error redacts the key
        chat = client.post(
            gateway.v1 + "/chat/completions",
            json={"model": gateway.model, "messages": [{"role": "user", "content": "Hi"}], "stream": True},
        )
        assert chat.status_code == 401
    listing = cli("keys", "list", data_dir=gateway.data_dir)
    assert "revoked" in next(line for line in listing.splitlines() if key_id in line)
    # The other keys are untouched.
    assert httpx.get(models, headers={"Authorization": f"Bearer {gateway.api_key}"}).status_code == 200


def test_revoking_an_unknown_key_fails(tmp_path: Path) -> None:
    result = run_cli("keys", "revoke", "key_doesnotexist", "--data-dir", str(tmp_path))
    assert result.returncode == 1
    assert "key_doesnotexist" in result.stderr


def test_first_serve_prints_a_usable_key_and_serves(tmp_path: Path) -> None:
    data_dir = tmp_path / "fresh"
    server = start_gateway(data_dir, startup_s=120)
    try:
        log = server.log()
        printed = [line.strip() for line in log.splitlines() if line.strip().startswith("sk-")]
        assert printed == [server.api_key], log  # the key came from the server's own output
        response = httpx.get(
            server.v1 + "/models", headers={"Authorization": f"Bearer {server.api_key}"}, timeout=10
        )
        assert response.status_code == 200
        # The default configuration: the embedded model, also under the names OpenAI guides use,
        # and the embedded embeddings model where its extra is installed.
        embeddings = [DEFAULT_EMBEDDINGS_MODEL] if runtime_available() else []
        assert [model["id"] for model in response.json()["data"]] == [
            server.model, *embeddings, "gpt-4o", "gpt-4o-mini"
        ]
    finally:
        server.stop()
    # A second start on the same data dir keeps the key and prints no new one, but says how to
    # make another when the first is lost.
    again = start_gateway(data_dir, startup_s=120)
    try:
        assert not [line for line in again.log().splitlines() if line.strip().startswith("sk-")]
        assert f"lost yours? `sluicegate keys create --data-dir {data_dir}` makes another" in again.log()
        response = httpx.get(again.v1 + "/models", headers={"Authorization": f"Bearer {server.api_key}"})
        assert response.status_code == 200
    finally:
        again.stop()


def test_config_interpolates_environment_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "sluicegate.yaml"
    config.write_text(
        "server:\n"
        "  port: ${SG_TEST_PORT}\n"
        "  host: ${SG_TEST_HOST:-0.0.0.0}\n"
        "models:\n"
        "  - name: hosted\n"
        "    provider: openai\n"
        "    base_url: ${SG_TEST_BASE:-https://api.example.test/v1/}\n"
        "    api_key: ${SG_TEST_KEY}\n"
        "    upstream_model: ${SG_TEST_MODEL:-gpt-4o-mini}\n"
        "    headers:\n"
        "      X-Team: team-${SG_TEST_TEAM}\n"
    )
    monkeypatch.setenv("SG_TEST_PORT", "9123")
    monkeypatch.setenv("SG_TEST_KEY", "sk-upstream-from-env")
    monkeypatch.setenv("SG_TEST_MODEL", "gpt-4.1")
    monkeypatch.setenv("SG_TEST_TEAM", "blue")
    monkeypatch.delenv("SG_TEST_HOST", raising=False)
    monkeypatch.delenv("SG_TEST_BASE", raising=False)
    settings = load_settings(config, tmp_path / "data")
    assert settings.server.port == 9123
    assert settings.server.host == "0.0.0.0"  # the default after `:-`
    model = settings.models[0]
    assert model.api_key == "sk-upstream-from-env"
    assert model.upstream_model == "gpt-4.1"  # a set variable wins over its default
    assert model.base_url == "https://api.example.test/v1"
    assert model.headers == {"X-Team": "team-blue"}
    assert settings.data_dir == tmp_path / "data"


def test_an_unset_variable_is_empty_and_warned_about(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    config = tmp_path / "sluicegate.yaml"
    config.write_text(
        "models:\n  - name: hosted\n    provider: openai\n    base_url: http://127.0.0.1:9/v1\n"
        "    api_key: ${SG_TEST_UNSET_KEY}\n"
    )
    monkeypatch.delenv("SG_TEST_UNSET_KEY", raising=False)
    with caplog.at_level("WARNING", logger="sluicegate.settings"):
        settings = load_settings(config, tmp_path / "data")
    assert settings.models[0].api_key == ""
    assert "SG_TEST_UNSET_KEY" in caplog.text


def test_an_unset_variable_is_warned_about_once_by_whatever_path_the_file_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """`serve --config c.yaml` reads it by the path given, its app again by the absolute one."""
    (tmp_path / "c.yaml").write_text(
        "models:\n  - name: hosted\n    provider: openai\n    base_url: http://127.0.0.1:9/v1\n"
        "    api_key: ${SG_TEST_UNSET_TWICE}\n"
    )
    monkeypatch.delenv("SG_TEST_UNSET_TWICE", raising=False)
    monkeypatch.chdir(tmp_path)
    with caplog.at_level("WARNING", logger="sluicegate.settings"):
        load_settings("c.yaml", tmp_path / "data")
        load_settings(tmp_path / "c.yaml", tmp_path / "data")
    assert caplog.text.count("SG_TEST_UNSET_TWICE") == 1


def test_config_file_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("server:\n  max_body_bytes: ${SG_TEST_LIMIT:-1024}\n")
    monkeypatch.setenv("SLUICEGATE_CONFIG", str(config))
    monkeypatch.delenv("SG_TEST_LIMIT", raising=False)
    assert load_settings(data_dir=tmp_path).server.max_body_bytes == 1024


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("models:\n  - name: x\n    provider: magic\n", "provider"),
        ("models:\n  - name: x\n    provider: openai\n", "base_url"),
        ("server:\n  port: eighty\n", "port"),
        ("server:\n  prot: 8080\n", "prot"),
        ("models: [\n", "invalid YAML"),
        ("- just\n- a list\n", "mapping"),
        (
            "models:\n  - name: a\n    provider: local\n    aliases: [b]\n  - name: b\n    provider: local\n",
            "'b' is used twice",
        ),
    ],
    ids=[
        "bad-provider",
        "openai-without-base-url",
        "port-not-int",
        "unknown-key",
        "bad-yaml",
        "not-a-mapping",
        "alias-clashes-with-a-name",
    ],
)
@pytest.mark.parametrize("command", [["serve"], ["keys", "list"]], ids=["serve", "keys-list"])
def test_bad_config_is_a_clear_error_and_exit_2(
    tmp_path: Path, content: str, expected: str, command: list[str]
) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(content)
    result = run_cli(*command, "--config", str(config), "--data-dir", str(tmp_path / "data"))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert str(config) in result.stderr
    assert expected in result.stderr
    assert result.stderr.startswith("sluicegate: ")
    assert not (tmp_path / "data").exists() or command != ["serve"]  # nothing started


def test_missing_config_file_is_exit_2(tmp_path: Path) -> None:
    result = run_cli("keys", "list", "--config", str(tmp_path / "nope.yaml"), "--data-dir", str(tmp_path))
    assert result.returncode == 2
    assert "nope.yaml" in result.stderr
    assert "Traceback" not in result.stderr
