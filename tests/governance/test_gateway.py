"""Governance through a running gateway, on both backends, seen by the `openai` SDK: every
refusal as its typed exception with its headers, rate-limit headers, the ledger row of a
request, the budget race and a client that leaves mid-stream."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.governance.conftest import make_backend
from tests.governance.support import FREE, HI, PRICED, GovGateway, gateway_config, start
from tests.support.openai_upstream import OpenAIUpstream, Reply, chunk

RESET = re.compile(r"^(\d+ms|\d+(\.\d+)?s|\d+m\d+s)$")


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def gov(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, upstream: OpenAIUpstream
) -> Iterator[GovGateway]:
    tmp = tmp_path_factory.mktemp(f"gov-{request.param}")
    for backend in make_backend(request.param, tmp):
        server = start(tmp / "gw", gateway_config(upstream, backend))
        try:
            yield server
        finally:
            server.stop()


def client(gov: GovGateway, secret: str) -> openai.OpenAI:
    return openai.OpenAI(api_key=secret, base_url=gov.v1, max_retries=0, timeout=30)


def test_an_expired_key_is_401_expired_api_key(gov: GovGateway) -> None:
    key_id, secret = gov.new_key(expires_at=time.time() + 30)
    with gov.admin() as admin:  # a key is never made expired; it can be set to have expired
        assert admin.patch(f"/admin/keys/{key_id}", json={"expires_at": time.time() - 1}).status_code == 200
    with pytest.raises(openai.AuthenticationError) as caught:
        client(gov, secret).chat.completions.create(model=PRICED, messages=HI)  # type: ignore[arg-type]
    assert caught.value.status_code == 401
    assert caught.value.code == "expired_api_key"
    assert "expired" in caught.value.message
    assert secret not in caught.value.message


def test_a_revoked_key_is_401_saying_so(gov: GovGateway) -> None:
    key_id, secret = gov.new_key()
    sdk = client(gov, secret)
    assert sdk.chat.completions.create(model=FREE, messages=HI).choices[0].message.content == "hi"  # type: ignore[arg-type]
    with gov.admin() as admin:
        assert admin.post(f"/admin/keys/{key_id}/revoke").json()["status"] == "revoked"
    deadline = time.monotonic() + 5  # every process sees it within the key table's refresh
    while True:
        try:
            sdk.chat.completions.create(model=FREE, messages=HI)  # type: ignore[arg-type]
        except openai.AuthenticationError as exc:
            assert exc.code == "invalid_api_key"
            assert "This API key has been revoked" in exc.message
            break
        assert time.monotonic() < deadline, "the revoked key still works after 5 s"
        time.sleep(0.1)


def test_a_model_outside_the_keys_list_is_403_model_not_allowed(gov: GovGateway) -> None:
    _, secret = gov.new_key(models=[FREE])
    sdk = client(gov, secret)
    assert sdk.chat.completions.create(model=FREE, messages=HI).choices  # type: ignore[arg-type]
    with pytest.raises(openai.PermissionDeniedError) as caught:
        sdk.chat.completions.create(model=PRICED, messages=HI)  # type: ignore[arg-type]
    assert caught.value.status_code == 403
    assert caught.value.code == "model_not_allowed"
    assert caught.value.param == "model"
    assert caught.value.response.headers["x-request-id"]


def test_an_exhausted_budget_is_402_with_balance_and_estimate(gov: GovGateway) -> None:
    _, secret = gov.new_key(budget_usd=2.5)
    sdk = client(gov, secret)
    # $1 per completion token: max_tokens 2 may cost $2, which fits in $2.50; the answer costs $1.
    ok = sdk.chat.completions.create(model=PRICED, messages=HI, max_tokens=2)  # type: ignore[arg-type]
    assert ok.usage is not None and ok.usage.completion_tokens == 1
    with pytest.raises(openai.APIStatusError) as caught:
        sdk.chat.completions.create(model=PRICED, messages=HI, max_tokens=3)  # type: ignore[arg-type]
    error = caught.value
    assert error.status_code == 402
    assert error.code == "insufficient_balance"
    body = error.body
    assert isinstance(body, dict)
    assert body["estimated_cost_usd"] == pytest.approx(3.0)
    # What remains: $2.50 less the $1 spent, or less the $2 still reserved if not yet settled.
    assert body["balance_usd"] in (pytest.approx(1.5), pytest.approx(0.5))


def test_requests_per_minute_is_429_with_retry_after_and_headers(gov: GovGateway) -> None:
    _, secret = gov.new_key(rpm=2)
    sdk = client(gov, secret)
    remaining = []
    for _ in range(2):
        raw = sdk.chat.completions.with_raw_response.create(model=FREE, messages=HI)  # type: ignore[arg-type]
        assert raw.headers["x-ratelimit-limit-requests"] == "2"
        assert RESET.match(raw.headers["x-ratelimit-reset-requests"])
        remaining.append(raw.headers["x-ratelimit-remaining-requests"])
    assert remaining == ["1", "0"]
    with pytest.raises(openai.RateLimitError) as caught:
        sdk.chat.completions.create(model=FREE, messages=HI)  # type: ignore[arg-type]
    assert caught.value.status_code == 429
    assert caught.value.code == "rate_limit_exceeded"
    headers = caught.value.response.headers
    assert int(headers["retry-after"]) >= 1
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert headers["x-ratelimit-limit-requests"] == "2"


def test_tokens_per_minute_is_429_once_the_tokens_are_used(gov: GovGateway) -> None:
    _, secret = gov.new_key(tpm=20)
    sdk = client(gov, secret)
    refused = None
    for _ in range(8):
        try:
            raw = sdk.chat.completions.with_raw_response.create(model=FREE, messages=HI)  # type: ignore[arg-type]
        except openai.RateLimitError as exc:
            refused = exc
            break
        assert raw.headers["x-ratelimit-limit-tokens"] == "20"
        assert int(raw.headers["x-ratelimit-remaining-tokens"]) < 20
        assert "x-ratelimit-limit-requests" not in raw.headers  # no request limit on this key
    assert refused is not None, "20 tokens per minute never refused 8 requests of ~8 tokens"
    assert refused.code == "rate_limit_exceeded"
    assert "tokens per minute" in refused.message
    assert int(refused.response.headers["retry-after"]) >= 1


def test_rate_limit_headers_on_a_stream(gov: GovGateway) -> None:
    _, secret = gov.new_key(rpm=100, tpm=100_000)
    with client(gov, secret).chat.completions.with_streaming_response.create(
        model=FREE, messages=HI, stream=True  # type: ignore[arg-type]
    ) as response:
        headers = response.headers
        text = "".join(c.choices[0].delta.content or "" for c in response.parse() if c.choices)
    assert text == "hi"
    assert headers["x-ratelimit-limit-requests"] == "100"
    assert headers["x-ratelimit-remaining-requests"] == "99"
    assert headers["x-ratelimit-limit-tokens"] == "100000"
    assert 100_000 - 20 < int(headers["x-ratelimit-remaining-tokens"]) < 100_000
    assert RESET.match(headers["x-ratelimit-reset-tokens"])


def test_the_ledger_row_of_a_stream(gov: GovGateway) -> None:
    key_id, secret = gov.new_key()
    with client(gov, secret).chat.completions.with_streaming_response.create(
        model=PRICED, messages=[{"role": "user", "content": "one two three"}], stream=True  # type: ignore[arg-type]
    ) as response:
        request_id = response.headers["x-request-id"]
        assert "".join(c.choices[0].delta.content or "" for c in response.parse() if c.choices) == "one two three"
    (row,) = gov.rows(key_id, 1)
    assert row["request_id"] == request_id
    assert row["door"] == "chat_completions"
    assert (row["model"], row["provider"], row["served_by"], row["upstream_model"]) == (
        PRICED, "openai", PRICED, "gpt-4o-mini"
    )
    assert row["stream"] is True and row["client_gone"] is False
    assert (row["status"], row["error_type"], row["finish_reason"]) == (200, None, "stop")
    assert (row["prompt_tokens"], row["completion_tokens"], row["usage_source"]) == (5, 3, "upstream")
    assert row["estimated"] is False
    assert row["cost_usd"] == pytest.approx(3.0)
    assert 0 < row["ttft_ms"] <= row["total_ms"]
    assert gov.key(key_id)["spent_usd"] == pytest.approx(3.0)


def test_fifty_concurrent_requests_against_a_budget_worth_ten(gov: GovGateway) -> None:
    key_id, secret = gov.new_key(budget_usd=10)

    results = gov.concurrent_chats(secret, 50, max_tokens=1)
    admitted = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, openai.APIStatusError) and r.status_code == 402]
    assert len(admitted) + len(refused) == 50, [r for r in results if isinstance(r, BaseException)][:3]
    assert 1 <= len(admitted) <= 11
    assert len(admitted) == 10  # each reserves exactly what it costs ($1), so none is lost either
    rows = gov.rows(key_id, 50)
    assert len(rows) == 50  # refusals are in the ledger too
    billed = [r for r in rows if r["status"] == 200]
    assert len(billed) == len(admitted)
    spent = gov.key(key_id)["spent_usd"]
    assert spent == pytest.approx(sum(r["cost_usd"] for r in rows)) == pytest.approx(10.0)
    assert gov.key(key_id)["reserved_usd"] == 0
    assert {r["error_code"] for r in rows if r["status"] != 200} == {"insufficient_balance"}


def test_a_client_that_leaves_mid_stream_is_billed_for_what_was_sent(
    gov: GovGateway, clean_upstream: OpenAIUpstream
) -> None:
    key_id, secret = gov.new_key()
    # No usage and no end: the upstream sends three words and then hangs.
    chunks = [chunk(role="assistant", content=""), chunk("Hello"), chunk(" world"), chunk(" again")]
    clean_upstream.enqueue(Reply(chunks=chunks, hang_after=True))
    body = {"model": PRICED, "messages": HI, "stream": True}
    with (
        httpx.Client(timeout=30) as http,
        http.stream("POST", gov.v1 + "/chat/completions", json=body, headers={"Authorization": f"Bearer {secret}"}) as r,
    ):
        seen = ""
        for line in r.iter_lines():
            seen += line
            if "again" in seen:
                break  # leave with the stream still open
    (row,) = gov.rows(key_id, 1)
    assert row["client_gone"] is True
    assert row["status"] == 499
    assert row["completion_tokens"] == 3  # "Hello world again" in o200k
    assert row["usage_source"] == "tokenizer"
    assert row["prompt_tokens"] > 0
    assert row["cost_usd"] == pytest.approx(3.0)
    assert gov.key(key_id)["spent_usd"] == pytest.approx(3.0)


def test_the_admin_api_is_for_the_admin_key_alone(gov: GovGateway) -> None:
    _, secret = gov.new_key()
    with httpx.Client(base_url=gov.gateway.base_url, timeout=10) as http:
        for method, path in [("GET", "/admin/keys"), ("POST", "/admin/keys"), ("GET", "/admin/usage"),
                             ("GET", "/admin/requests"), ("PATCH", "/admin/keys/x")]:
            denied = http.request(method, path, headers={"Authorization": f"Bearer {secret}"}, json={})
            assert denied.status_code == 403, (method, path, denied.text)
            assert denied.json()["error"]["code"] == "admin_only"
            assert http.request(method, path, json={}).status_code == 401


def test_admin_key_management(gov: GovGateway) -> None:
    with gov.admin() as admin:
        made = admin.post(
            "/admin/keys",
            json={"name": "ops", "budget_usd": 5, "rpm": 60, "tpm": 1000, "models": ["a", "b"], "expires_in": "30d"},
        )
        assert made.status_code == 201
        key = made.json()
        assert key["secret"].startswith("sk-sg-")
        assert (key["budget_usd"], key["rpm"], key["tpm"], key["models"], key["status"]) == (
            5.0, 60, 1000, ["a", "b"], "active"
        )
        assert key["expires_at"] == pytest.approx(time.time() + 30 * 86400, abs=60)
        assert key["secret"] not in admin.get("/admin/keys").text
        listed = {k["id"]: k for k in admin.get("/admin/keys").json()["data"]}
        assert listed[key["id"]]["remaining_usd"] == 5.0
        assert any(k["admin"] for k in listed.values())
        patched = admin.patch(f"/admin/keys/{key['id']}", json={"budget_usd": None, "rpm": 10, "models": None})
        assert patched.status_code == 200
        assert (patched.json()["budget_usd"], patched.json()["rpm"], patched.json()["models"]) == (None, 10, None)
        assert admin.patch(f"/admin/keys/{key['id']}", json={"rpm": -1}).status_code == 400
        assert admin.patch(f"/admin/keys/{key['id']}", json={"colour": "red"}).json()["error"]["param"] == "colour"
        assert admin.get("/admin/keys/key_nope").status_code == 404
        assert admin.delete(f"/admin/keys/{key['id']}").json()["status"] == "revoked"
        usage = admin.get("/admin/usage", params={"group_by": "day,key,model"}).json()
        assert usage["group_by"] == ["day", "key", "model"]
        for row in usage["data"]:
            assert {"day", "key_id", "key_name", "model", "requests", "errors", "prompt_tokens",
                    "completion_tokens", "total_tokens", "cost_usd"} <= set(row)
        assert admin.get("/admin/usage", params={"group_by": "colour"}).status_code == 400


def test_admin_keys_keep_their_names_unique_and_are_never_made_expired(gov: GovGateway) -> None:
    with gov.admin() as admin:
        team = admin.post("/admin/keys", json={"name": "team"})
        assert team.status_code == 201
        again = admin.post("/admin/keys", json={"name": "team"})
        assert again.status_code == 400
        assert (again.json()["error"]["code"], again.json()["error"]["param"]) == ("key_name_taken", "name")
        unnamed = {admin.post("/admin/keys", json={}).json()["name"] for _ in range(2)}
        assert len(unnamed) == 2 and "team" not in unnamed
        other = admin.post("/admin/keys", json={"name": "other"}).json()
        clash = admin.patch(f"/admin/keys/{other['id']}", json={"name": "team"})
        assert clash.status_code == 400 and clash.json()["error"]["code"] == "key_name_taken"
        assert admin.patch(f"/admin/keys/{team.json()['id']}", json={"name": "team"}).status_code == 200
        past = admin.post("/admin/keys", json={"name": "late", "expires_at": "2020-01-01"})
        assert past.status_code == 400 and "2020-01-01 00:00 UTC is already past" in past.json()["error"]["message"]
        names = [key["name"] for key in admin.get("/admin/keys").json()["data"]]
        assert names.count("team") == 1 and "late" not in names
        assert admin.get("/admin/usage", params={"since": "yesterday"}).status_code == 400


def test_a_request_refused_by_its_limit_gives_its_reservation_back(gov: GovGateway) -> None:
    key_id, secret = gov.new_key(rpm=1, budget_usd=10)  # limit and budget are checked at once
    sdk = client(gov, secret)
    sdk.chat.completions.create(model=PRICED, messages=HI, max_tokens=5)  # type: ignore[arg-type]
    with pytest.raises(openai.RateLimitError):
        sdk.chat.completions.create(model=PRICED, messages=HI, max_tokens=5)  # type: ignore[arg-type]
    rows = gov.rows(key_id, 2)
    assert sorted(r["status"] for r in rows) == [200, 429]
    key = gov.key(key_id)
    assert key["reserved_usd"] == 0
    assert key["spent_usd"] == pytest.approx(1.0)
    assert key["remaining_usd"] == pytest.approx(9.0)
