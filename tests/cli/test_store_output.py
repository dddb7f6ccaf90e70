"""The store commands say which store they read (on stderr, never a password), and a reader
that stops early (`| head`) ends the output quietly, without a traceback."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from sluicegate.commands.common import store_label
from sluicegate.governance.keys import KeyStore
from sluicegate.settings import Settings
from sluicegate.store.sqlite import SQLiteStore


def run(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sluicegate.cli", *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_keys_and_usage_name_the_store_they_read(tmp_path: Path) -> None:
    for args in (("keys", "list"), ("keys", "list", "--format", "json"), ("usage",)):
        result = run(*args, data_dir=tmp_path)
        assert result.returncode == 0, result.stderr
        assert f"store: SQLite {tmp_path / 'sluicegate.db'}" in result.stderr.splitlines()
        assert "store" not in result.stdout


def test_a_postgresql_store_is_named_without_its_password() -> None:
    settings = Settings.model_validate({"database": {"url": "postgresql://gate:hunter2@db.internal:5432/gw"}})
    label = store_label(settings)
    assert label == "PostgreSQL postgresql://gate:***@db.internal:5432/gw"


def test_a_reader_that_stops_early_gets_no_traceback(tmp_path: Path) -> None:
    async def many_keys() -> None:
        store = SQLiteStore.in_data_dir(tmp_path)
        await store.open()
        keys = KeyStore(store)
        for n in range(400):  # far more JSON than a pipe holds
            await keys.create(f"key-{n}")
        await store.close()

    asyncio.run(many_keys())
    command = [
        sys.executable,
        "-m",
        "sluicegate.cli",
        "keys",
        "list",
        "--format",
        "json",
        "--data-dir",
        str(tmp_path),
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    assert process.stdout.readline().strip() == b"["
    process.stdout.close()  # as `head -1` does
    errors = process.stderr.read().decode()
    assert process.wait(60) == 0
    assert "Traceback" not in errors and "BrokenPipeError" not in errors, errors
