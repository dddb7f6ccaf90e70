"""A client that leaves the embedded model's answer (streamed or whole) is billed for what it
generated, counted with the model's own tokenizer (the model sends no usage when it is stopped)."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.governance.support import admin_key_of
from tests.support.server import Gateway


def test_leaving_a_local_stream_is_counted_with_the_local_tokenizer(gateway: Gateway) -> None:
    admin = {"Authorization": f"Bearer {admin_key_of(gateway)}"}
    with httpx.Client(base_url=gateway.base_url, timeout=120) as http:
        made = http.post("/admin/keys", json={"name": "local-leaver"}, headers=admin).json()
        body = {
            "model": gateway.model,
            "messages": [{"role": "user", "content": "Count from one to one hundred in words."}],
            "stream": True,
            "max_tokens": 200,
            "temperature": 0,
        }
        with http.stream(
            "POST", "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {made['secret']}"}
        ) as response:
            assert response.status_code == 200
            contents = 0
            for line in response.iter_lines():
                if '"content":"' in line and '"content":""' not in line:
                    contents += 1
                if contents >= 3:
                    break  # leave while the model is still generating
        deadline = time.monotonic() + 30
        while True:
            rows = http.get("/admin/requests", params={"key_id": made["id"]}, headers=admin).json()["data"]
            if rows or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    (row,) = rows
    assert row["client_gone"] is True and row["status"] == 499
    assert row["provider"] == "local"
    assert row["usage_source"] == "tokenizer"
    assert 3 <= row["completion_tokens"] < 200
    assert row["prompt_tokens"] > 10  # the chat template's tokens, counted exactly
    assert row["cost_usd"] == 0  # the embedded model has no price


def test_leaving_a_whole_local_answer_is_billed_the_tokens_generated_by_then(gateway: Gateway) -> None:
    """A non-streamed request: the model is stopped when the client hangs up, and the row counts
    what it had generated (before: 0 tokens)."""
    admin = {"Authorization": f"Bearer {admin_key_of(gateway)}"}
    with httpx.Client(base_url=gateway.base_url, timeout=120) as http:
        made = http.post("/admin/keys", json={"name": "local-whole-leaver"}, headers=admin).json()
        body = {
            "model": gateway.model,
            "messages": [{"role": "user", "content": "Write a very long story about a lighthouse keeper."}],
            "max_tokens": 2000,
            "temperature": 0,
        }
        with pytest.raises(httpx.ReadTimeout):  # the client gives up and closes the connection
            http.post(
                "/v1/chat/completions",
                json=body,
                headers={"Authorization": f"Bearer {made['secret']}"},
                timeout=httpx.Timeout(120, read=4),
            )
        deadline = time.monotonic() + 30
        while True:
            rows = http.get("/admin/requests", params={"key_id": made["id"]}, headers=admin).json()["data"]
            if rows or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    (row,) = rows
    assert row["client_gone"] is True and row["status"] == 499
    assert row["usage_source"] == "tokenizer"
    assert row["prompt_tokens"] > 10
    assert 0 < row["completion_tokens"] < 2000
