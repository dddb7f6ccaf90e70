"""One log line per request, as text or as JSON (`serve --log-format json`), parsed back; never
a key, a prompt or an answer unless debug logging is asked for."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx

from tests.support.openai_upstream import OpenAIUpstream
from tests.support.server import Gateway, cli, start_gateway

PROMPT = "purple elephant 7731"  # the echo upstream answers with the same words
BOGUS_KEY = "sk-sg-not-a-real-key-but-secret-looking-0042"


def start(tmp_path: Path, upstream: OpenAIUpstream, *args: str) -> tuple[Gateway, Path]:
    config = {"models": [{"name": "up", "provider": "openai", "base_url": upstream.base_url}]}
    stderr = tmp_path / "stderr.log"
    return start_gateway(tmp_path, config, extra_args=list(args), stderr_path=stderr), stderr


def traffic(gateway: Gateway) -> None:
    body = {"model": "up", "messages": [{"role": "user", "content": PROMPT}]}
    headers = {"Authorization": f"Bearer {gateway.api_key}"}
    url = gateway.v1 + "/chat/completions"
    ok = httpx.post(url, json={**body, "stream": True}, headers={**headers, "x-request-id": "client-req-1"})
    assert ok.status_code == 200 and ok.headers["x-request-id"] == "client-req-1"
    assert PROMPT.split()[0] in ok.text  # the answer really carried the words
    whole = httpx.post(url, json=body, headers=headers)
    assert whole.status_code == 200
    refused = httpx.post(url, json={**body, "stream": True}, headers={"Authorization": f"Bearer {BOGUS_KEY}"})
    assert refused.status_code == 401
    missing = httpx.post(url, json={**body, "model": "nope"}, headers=headers)
    assert missing.status_code == 404


def key_id(gateway: Gateway) -> str:
    listing = cli("keys", "list", data_dir=gateway.data_dir)
    hint = gateway.api_key[:10]
    return next(line.split()[0] for line in listing.splitlines() if hint in line)


def stopped_log(gateway: Gateway, stderr: Path) -> str:
    gateway.stop()
    assert gateway.process.returncode == 0
    return stderr.read_text()


def assert_no_secrets(log: str, gateway: Gateway) -> None:
    assert gateway.api_key not in log
    assert BOGUS_KEY not in log
    for word in PROMPT.split():
        assert word not in log, word


def test_json_lines_one_per_request_without_secrets(tmp_path: Path, clean_upstream: OpenAIUpstream) -> None:
    gateway, stderr = start(tmp_path, clean_upstream, "--log-format", "json")
    traffic(gateway)
    owner = key_id(gateway)
    log = stopped_log(gateway, stderr)

    records = [json.loads(line) for line in log.splitlines()]  # every line is one JSON object
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
    access = [r for r in records if r["logger"] == "sluicegate.access"]
    assert len(access) == 4
    streamed = next(r for r in access if r["request_id"] == "client-req-1")
    assert streamed["key_id"] == owner
    assert (streamed["model"], streamed["deployment"], streamed["status"]) == ("up", "up", 200)
    assert streamed["stream"] is True
    assert (streamed["tokens_in"], streamed["tokens_out"]) == (5, 3)
    assert isinstance(streamed["ttft_ms"], int) and streamed["total_ms"] >= streamed["ttft_ms"]
    assert streamed["finish"] == "stop"
    statuses = sorted(r["status"] for r in access)
    assert statuses == [200, 200, 401, 404]
    refused = next(r for r in access if r["status"] == 401)
    assert refused["key_id"] is None and refused["error_type"] == "invalid_request_error"
    assert all(r["request_id"] for r in access) and len({r["request_id"] for r in access}) == 4
    assert_no_secrets(log, gateway)


ACCESS = re.compile(r"^\S+ \S+ INFO sluicegate\.access: (\S+)((?: \w+=\S+)*)$")


def parse_text(line: str) -> dict[str, Any] | None:
    match = ACCESS.match(line)
    if match is None:
        return None
    fields: dict[str, Any] = dict(pair.split("=", 1) for pair in match.group(2).split())
    fields["request_id"] = match.group(1)
    return fields


def test_text_lines_by_default(tmp_path: Path, clean_upstream: OpenAIUpstream) -> None:
    gateway, stderr = start(tmp_path, clean_upstream)
    traffic(gateway)
    owner = key_id(gateway)
    log = stopped_log(gateway, stderr)

    access = [fields for line in log.splitlines() if (fields := parse_text(line))]
    assert len(access) == 4
    streamed = next(f for f in access if f["request_id"] == "client-req-1")
    assert streamed["key_id"] == owner
    assert (streamed["model"], streamed["status"], streamed["tokens_in"], streamed["tokens_out"]) == (
        "up",
        "200",
        "5",
        "3",
    )
    assert int(streamed["total_ms"]) >= int(streamed["ttft_ms"]) >= 0
    assert sorted(f["status"] for f in access) == ["200", "200", "401", "404"]
    assert_no_secrets(log, gateway)


def test_debug_logging_shows_prompts_and_answers(tmp_path: Path, clean_upstream: OpenAIUpstream) -> None:
    gateway, stderr = start(tmp_path, clean_upstream, "--log-level", "debug", "--log-format", "json")
    traffic(gateway)
    log = stopped_log(gateway, stderr)
    records = [json.loads(line) for line in log.splitlines()]
    content = [r for r in records if r["logger"] == "sluicegate.access" and r["level"] == "debug"]
    shown = next(r for r in content if r["request_id"] == "client-req-1")
    assert shown["messages"] == [{"role": "user", "content": PROMPT}]
    assert shown["answer"] == PROMPT
    assert gateway.api_key not in log  # keys never, even in debug


def test_requests_no_door_took_have_a_line_too(tmp_path: Path, clean_upstream: OpenAIUpstream) -> None:
    gateway, stderr = start(tmp_path, clean_upstream, "--log-format", "json")
    bogus = {"Authorization": f"Bearer {BOGUS_KEY}", "x-request-id": "models-1"}
    assert httpx.get(gateway.v1 + "/models?key=" + BOGUS_KEY, headers=bogus).status_code == 401
    assert httpx.get(gateway.base_url + "/health").status_code == 200
    log = stopped_log(gateway, stderr)
    access = [r for r in map(json.loads, log.splitlines()) if r["logger"] == "sluicegate.access"]
    assert len(access) == 1  # health checks (and the start-up polling) log at debug only
    line = access[0]
    assert (line["request_id"], line["method"], line["path"], line["status"]) == (
        "models-1",
        "GET",
        "/v1/models",
        401,
    )
    assert isinstance(line["total_ms"], int)
    assert BOGUS_KEY not in log  # neither the header nor the query string is logged
