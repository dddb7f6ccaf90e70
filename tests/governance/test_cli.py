"""`sluicegate keys ...` and `sluicegate usage` as subprocesses, on the store the config names."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from sluicegate.store.records import LedgerRecord, usd_to_nanos
from tests.governance.conftest import Backend

SECRET = re.compile(r"^sk-sg-[A-Za-z0-9_-]{20,}$")


def run(backend: Backend, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "sluicegate.yaml"
    config.write_text(yaml.safe_dump(backend.config({"models": [{"name": "m", "provider": "local"}]})))
    return subprocess.run(
        [sys.executable, "-m", "sluicegate.cli", *args, "--config", str(config), "--data-dir", str(backend.data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def ok(backend: Backend, tmp_path: Path, *args: str) -> str:
    result = run(backend, tmp_path, *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_keys_with_rules_from_create_to_update(backend: Backend, tmp_path: Path) -> None:
    out = ok(backend, tmp_path, "keys", "create", "--name", "alice", "--budget", "5", "--rpm", "60",
             "--tpm", "100000", "--models", "a,b", "--expires", "30d")
    secret = out.rstrip("\n").split("\n")[-1]
    assert SECRET.match(secret), out
    key_id = re.search(r"key_[0-9a-f]+", out).group(0)  # type: ignore[union-attr]
    listed = json.loads(ok(backend, tmp_path, "keys", "list", "--format", "json"))
    (alice,) = [k for k in listed if k["id"] == key_id]
    assert (alice["name"], alice["budget_usd"], alice["rpm"], alice["tpm"], alice["models"]) == (
        "alice", 5.0, 60, 100000, ["a", "b"]
    )
    assert alice["expires_at"] == pytest.approx(time.time() + 30 * 86400, abs=120)
    assert secret not in json.dumps(listed)
    table = ok(backend, tmp_path, "keys", "list")
    row = next(line for line in table.splitlines() if key_id in line)
    assert "$5.0000" in row and "60" in row and "100000" in row and "a,b" in row and "active" in row
    assert "SPENT" in table and "BUDGET" in table

    ok(backend, tmp_path, "keys", "update", key_id, "--budget", "none", "--rpm", "10", "--models", "all",
       "--expires", "never", "--name", "alice2")
    (after,) = [k for k in json.loads(ok(backend, tmp_path, "keys", "list", "--format", "json")) if k["id"] == key_id]
    assert (after["name"], after["budget_usd"], after["rpm"], after["tpm"], after["models"], after["expires_at"]) == (
        "alice2", None, 10, 100000, None, None
    )
    assert ok(backend, tmp_path, "keys", "revoke", key_id).strip() == f"revoked {key_id}"
    assert "revoked" in next(line for line in ok(backend, tmp_path, "keys", "list").splitlines() if key_id in line)


def test_bad_rules_are_exit_2(backend: Backend, tmp_path: Path) -> None:
    for args in (["keys", "create", "--expires", "soon"], ["keys", "create", "--rpm", "-1"],
                 ["keys", "create", "--budget", "lots"], ["usage", "--by", "colour"], ["usage", "--since", "today"]):
        result = run(backend, tmp_path, *args)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.startswith("sluicegate: ") and "Traceback" not in result.stderr
    assert run(backend, tmp_path, "keys", "update", "key_nope", "--rpm", "5").returncode == 1


def test_keys_are_updated_by_name_and_names_stay_unique(backend: Backend, tmp_path: Path) -> None:
    ok(backend, tmp_path, "keys", "create", "--name", "alice")
    ok(backend, tmp_path, "keys", "create", "--name", "bob")
    assert "(alice)" in ok(backend, tmp_path, "keys", "update", "alice", "--rpm", "7")
    taken = run(backend, tmp_path, "keys", "update", "bob", "--name", "alice")
    assert taken.returncode == 2 and "a key named 'alice' exists already" in taken.stderr
    again = run(backend, tmp_path, "keys", "create", "--name", "bob")
    assert again.returncode == 2 and "a key named 'bob' exists already" in again.stderr
    unknown = run(backend, tmp_path, "keys", "update", "carol", "--rpm", "1")
    assert unknown.returncode == 1
    assert unknown.stderr.splitlines()[-1] == "sluicegate: no key with the id or name carol"  # after the store's name
    past = run(backend, tmp_path, "keys", "create", "--name", "late", "--expires", "2020-01-01")
    assert past.returncode == 2 and "the expiry 2020-01-01 00:00 UTC is already past" in past.stderr
    keys = {k["name"]: k for k in json.loads(ok(backend, tmp_path, "keys", "list", "--format", "json"))}
    assert set(keys) == {"alice", "bob"} and (keys["alice"]["rpm"], keys["bob"]["rpm"]) == (7, None)


def test_usage_in_three_formats(backend: Backend, tmp_path: Path) -> None:
    first = ok(backend, tmp_path, "keys", "create", "--name", "one")
    second = ok(backend, tmp_path, "keys", "create", "--name", "two")
    one = re.search(r"key_[0-9a-f]+", first).group(0)  # type: ignore[union-attr]
    two = re.search(r"key_[0-9a-f]+", second).group(0)  # type: ignore[union-attr]

    def rec(key: str, model: str, cost: float, prompt: int, completion: int) -> LedgerRecord:
        return LedgerRecord(request_id="r", created_at=time.time(), key_id=key, door="chat_completions", model=model,
                            prompt_tokens=prompt, completion_tokens=completion, cost_nanos=usd_to_nanos(cost))

    async def write() -> None:
        store = backend.store()
        await store.open()
        try:
            await store.settle([rec(one, "x", 0.5, 10, 20), rec(one, "x", 0.25, 1, 2), rec(one, "y", 1, 3, 4),
                                rec(two, "x", 2, 5, 6)])
        finally:
            await store.close()

    asyncio.run(write())
    rows = json.loads(ok(backend, tmp_path, "usage", "--format", "json"))
    got = {(r["key_id"], r["model"]): r for r in rows}
    assert set(got) == {(one, "x"), (one, "y"), (two, "x")}
    assert (got[one, "x"]["requests"], got[one, "x"]["prompt_tokens"], got[one, "x"]["completion_tokens"]) == (2, 11, 22)
    assert got[one, "x"]["cost_usd"] == 0.75
    assert got[one, "x"]["key_name"] == "one"
    only = json.loads(ok(backend, tmp_path, "usage", "--format", "json", "--key", one, "--model", "y"))
    assert [(r["key_id"], r["model"], r["requests"]) for r in only] == [(one, "y", 1)]
    assert json.loads(ok(backend, tmp_path, "usage", "--format", "json", "--since", "2999-01-01")) == []
    today = json.loads(ok(backend, tmp_path, "usage", "--format", "json", "--since", "1d", "--by", "day"))
    assert len(today) == 1 and today[0]["requests"] == 4 and today[0]["cost_usd"] == 3.75
    table = list(csv.DictReader(io.StringIO(ok(backend, tmp_path, "usage", "--format", "csv"))))
    assert {(r["key_id"], r["model"], r["requests"], r["cost_usd"]) for r in table} == {
        (one, "x", "2", "0.75"), (one, "y", "1", "1.0"), (two, "x", "1", "2.0")
    }
    text = ok(backend, tmp_path, "usage")
    assert "TOTAL" in text and "$3.750000" in text and "one" in text and "two" in text
