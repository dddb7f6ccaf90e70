"""The byte relay, live: an OpenAI chat-completions client (the real `openai` SDK, and raw
httpx for the bytes) on an OpenAI-compatible upstream gets the upstream's chunks as they came,
with the model name rewritten; the ledger has the upstream's usage and cost; a mid-stream
error, a client leaving, and an entry with the relay turned off (the translated path)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import orjson
import pytest

from tests.governance.support import GovGateway, start
from tests.support.anthropic_upstream import AnthropicUpstream
from tests.support.openai_upstream import OpenAIUpstream, Reply

RELAYED = "relayed"  # passthrough on (the default)
TRANSLATED = "translated"  # the same upstream, passthrough: false
RETRIED = "retried"  # relayed, retried once, then falling back to CLAUDE
CLAUDE = "claude-fallback"
UPSTREAM_NAME = "gpt-4o-mini"
ANSWERED_AS = "gpt-4o-mini-2024-07-18"  # what the upstream names itself in its chunks
HI = [{"role": "user", "content": "hi"}]
PRICE = {"input": 1_000_000.0, "output": 2_000_000.0}  # $1 per prompt token, $2 per completion token


@pytest.fixture(scope="module")
def gov(
    tmp_path_factory: pytest.TempPathFactory, upstream: OpenAIUpstream, anthropic_upstream: AnthropicUpstream
) -> Iterator[GovGateway]:
    entry = {"provider": "openai", "base_url": upstream.base_url, "api_key": "x", "upstream_model": UPSTREAM_NAME}
    config = {
        "server": {"keepalive_first_s": 0.2, "keepalive_interval_s": 0.2},
        "models": [
            {"name": RELAYED, **entry, "price": PRICE},
            {"name": TRANSLATED, **entry, "price": PRICE, "passthrough": False},
            {"name": RETRIED, **entry, "retries": {"count": 1, "backoff_base_s": 0}, "fallbacks": [CLAUDE]},
            {"name": CLAUDE, "provider": "anthropic", "base_url": anthropic_upstream.base_url, "api_key": "a"},
        ]
    }
    server = start(tmp_path_factory.mktemp("relay"), config)
    yield server
    server.stop()


def event(choices: list[dict[str, Any]], usage: Any = None, **extra: Any) -> bytes:
    head = {"id": "chatcmpl-up1", "object": "chat.completion.chunk", "created": 1700000000, "model": ANSWERED_AS}
    return b"data: " + orjson.dumps({**head, "system_fingerprint": "fp_1", "choices": choices, "usage": usage, **extra}) + b"\n\n"


def delta(finish: str | None = None, **fields: Any) -> dict[str, Any]:
    return {"index": 0, "delta": fields, "logprobs": None, "finish_reason": finish}


USAGE = {"prompt_tokens": 11, "completion_tokens": 4, "total_tokens": 15, "prompt_tokens_details": {"cached_tokens": 0}}
# the upstream escapes non-ASCII text (as Python's json.dumps does): the relay passes a text
# chunk's bytes on as they are, the translated path decodes and encodes them again (raw UTF-8)
ESCAPED = event([delta(content="caf\u00e9")]).replace("caf\u00e9".encode(), b"caf\\u00e9")
ANSWER = [
    event([delta(role="assistant", content="", refusal=None)]),
    event([delta(content="Hello")], obfuscation="x1"),
    event([delta(content=", world")]),
    ESCAPED,
    event([delta(content=" a \"quote\"")]),
    event([delta(finish="stop")]),
    event([], USAGE),
    b"data: [DONE]\n\n",
]
TEXT = 'Hello, worldcaf\u00e9 a "quote"'


def stream_bytes(gov: GovGateway, secret: str, model: str, **fields: Any) -> bytes:
    body = {"model": model, "messages": HI, "stream": True, **fields}
    with httpx.stream(
        "POST", gov.v1 + "/chat/completions", json=body, headers={"Authorization": f"Bearer {secret}"}, timeout=30
    ) as response:
        assert response.status_code == 200
        return response.read()


def chunks_of(raw: bytes) -> list[dict[str, Any]]:
    events = raw.split(b"\n\n")
    assert events[-2:] == [b"data: [DONE]", b""]
    return [orjson.loads(e[len(b"data: ") :]) for e in events[:-2]]


def same_but_ids(raw: bytes, model: str) -> bytes:
    """The stream with its completion id, creation time and model name made neutral."""
    chunks = [c for c in chunks_of(raw) if "error" not in c]
    (completion_id,) = {c["id"] for c in chunks}
    (created,) = {c["created"] for c in chunks}
    assert {c["model"] for c in chunks} == {model}
    neutral = raw.replace(completion_id.encode(), b"ID").replace(b'"created":%d' % created, b'"created":0')
    return neutral.replace(b'"model":"%s"' % model.encode(), b'"model":"M"')


@pytest.mark.parametrize("include_usage", [True, False])
def test_the_client_gets_the_translated_paths_stream_with_text_chunks_passed_on_as_they_came(
    gov: GovGateway, clean_upstream: OpenAIUpstream, include_usage: bool
) -> None:
    _, secret = gov.new_key()
    clean_upstream.enqueue(Reply(chunks=ANSWER), Reply(chunks=ANSWER))
    options = {"stream_options": {"include_usage": True}} if include_usage else {}
    relayed = stream_bytes(gov, secret, RELAYED, **options)
    translated = stream_bytes(gov, secret, TRANSLATED, **options)
    assert clean_upstream.requests[-2]["model"] == UPSTREAM_NAME
    assert clean_upstream.requests[-2]["stream_options"] == {"include_usage": True}  # for the ledger
    assert b"caf\\u00e9" in relayed and "caf\u00e9".encode() in translated  # the relayed text was not decoded
    assert same_but_ids(relayed, RELAYED) == same_but_ids(translated, TRANSLATED).replace(
        "caf\u00e9".encode(), b"caf\\u00e9"
    )
    chunks = chunks_of(relayed)
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]) == TEXT
    assert all(set(c) == {"id", "object", "created", "model", "system_fingerprint", "choices"} | (
        {"usage"} if include_usage else set()
    ) for c in chunks)
    assert (chunks[-1].get("usage") or {}).get("completion_tokens") == (4 if include_usage else None)


def test_the_sdk_reads_a_relayed_stream_and_the_ledger_has_its_usage_and_cost(
    gov: GovGateway, clean_upstream: OpenAIUpstream
) -> None:
    key_id, secret = gov.new_key()
    clean_upstream.enqueue(Reply(chunks=ANSWER))
    sdk = openai.OpenAI(base_url=gov.v1, api_key=secret, max_retries=0)
    chunks = list(sdk.chat.completions.create(model=RELAYED, messages=HI, stream=True))  # type: ignore[arg-type]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == TEXT
    assert {c.model for c in chunks} == {RELAYED}
    assert len({c.id for c in chunks}) == 1
    assert all(c.usage is None for c in chunks)  # not asked for: the gateway's own metering is not shown
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    (row,) = gov.rows(key_id, 1)
    assert (row["model"], row["upstream_model"], row["status"], row["finish_reason"]) == (
        RELAYED, UPSTREAM_NAME, 200, "stop"
    )
    assert (row["prompt_tokens"], row["completion_tokens"], row["usage_source"]) == (11, 4, "upstream")
    assert row["cost_usd"] == pytest.approx(11 * 1 + 4 * 2)
    assert row["ttft_ms"] is not None


def test_an_upstream_error_mid_stream_is_the_doors_error_event(gov: GovGateway, clean_upstream: OpenAIUpstream) -> None:
    key_id, secret = gov.new_key()
    failure = b'data: {"error":{"message":"The server is overloaded.","type":"server_error","code":null}}\n\n'
    clean_upstream.enqueue(Reply(chunks=[*ANSWER[:3], failure]), Reply(chunks=[*ANSWER[:3], failure]))
    raw, translated = stream_bytes(gov, secret, RELAYED), stream_bytes(gov, secret, TRANSLATED)
    errors = []
    for stream in (raw, translated):
        events = stream.split(b"\n\n")
        assert events[-2:] == [b"data: [DONE]", b""]
        errors.append(orjson.loads(events[-3][len(b"data: ") :])["error"])
        assert "error mid-stream" in errors[-1]["message"]
    assert errors[0]["type"] == errors[1]["type"] and errors[0]["code"] == errors[1]["code"]
    assert same_but_ids(raw, RELAYED).split(b"\n\n")[:-3] == same_but_ids(translated, TRANSLATED).split(b"\n\n")[:-3]
    sdk = openai.OpenAI(base_url=gov.v1, api_key=secret, max_retries=0)
    clean_upstream.enqueue(Reply(chunks=[*ANSWER[:3], failure]))
    seen = []
    with pytest.raises(openai.APIError, match="error mid-stream"):
        for chunk in sdk.chat.completions.create(model=RELAYED, messages=HI, stream=True):  # type: ignore[arg-type]
            seen.append(chunk.choices[0].delta.content or "")
    assert "".join(seen) == "Hello, world"
    rows = gov.rows(key_id, 3)
    assert {row["status"] for row in rows if row["model"] == RELAYED} == {502}
    assert all(row["completion_tokens"] > 0 for row in rows)  # estimated from the text sent


def test_a_client_leaving_stops_the_upstream_and_is_billed_for_what_was_sent(
    gov: GovGateway, clean_upstream: OpenAIUpstream
) -> None:
    key_id, secret = gov.new_key()
    words = [event([delta(content=f" word{i}")]) for i in range(200)]
    clean_upstream.enqueue(Reply(chunks=[ANSWER[0], *words, ANSWER[4], ANSWER[5], ANSWER[6]], delay_s=0.02))
    sdk = openai.OpenAI(base_url=gov.v1, api_key=secret, max_retries=0)
    stream = sdk.chat.completions.create(model=RELAYED, messages=HI, stream=True)  # type: ignore[arg-type]
    got = ""
    for chunk in stream:
        got += chunk.choices[0].delta.content or ""
        if got.count("word") >= 3:
            break
    stream.close()
    assert clean_upstream.wait_for_disconnects(1)
    (row,) = gov.rows(key_id, 1)
    assert row["status"] == 499
    assert row["usage_source"] in ("tokenizer", "estimate")
    assert 3 <= row["completion_tokens"] < 200 * 2


@pytest.mark.parametrize("status_first", [True, False], ids=["status-then-silence", "no-status-yet"])
def test_keep_alives_while_the_upstream_is_silent(
    gov: GovGateway, clean_upstream: OpenAIUpstream, status_first: bool
) -> None:
    """An upstream silent after its status (or before it): keep-alives, then the relayed chunks."""
    _, secret = gov.new_key()
    release = threading.Event()
    if status_first:
        clean_upstream.enqueue(Reply(chunks=ANSWER, release=release))
    else:
        clean_upstream.enqueue(Reply(chunks=ANSWER, wait_s=1.0))
    timer = threading.Timer(1.0, release.set)
    timer.start()
    raw = stream_bytes(gov, secret, RELAYED, stream_options={"include_usage": True})
    timer.join()
    assert raw.startswith(b": keep-alive\n\n")
    chunks = chunks_of(raw.replace(b": keep-alive\n\n", b""))
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]) == TEXT
    assert chunks[-1]["usage"]["total_tokens"] == 15


def test_retries_and_fallbacks_before_the_first_byte(
    gov: GovGateway, clean_upstream: OpenAIUpstream, anthropic_upstream: AnthropicUpstream
) -> None:
    """A relayed entry's upstream fails with a 503: retried, the retry is relayed; failing twice,
    the Anthropic fallback answers, translated, in the same door's chunks."""
    _, secret = gov.new_key()
    busy = Reply(status=503, body=b'{"error":{"message":"busy","type":"server_error"}}')
    clean_upstream.enqueue(busy, Reply(chunks=ANSWER))
    with httpx.stream(
        "POST", gov.v1 + "/chat/completions", json={"model": RETRIED, "messages": HI, "stream": True},
        headers={"Authorization": f"Bearer {secret}"}, timeout=30,
    ) as response:
        assert response.headers["x-sluicegate-attempts"] == "2"
        chunks = chunks_of(response.read())
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]) == TEXT
    assert {c["model"] for c in chunks} == {RETRIED}

    anthropic_upstream.reset()
    clean_upstream.enqueue(busy, busy)
    sdk = openai.OpenAI(base_url=gov.v1, api_key=secret, max_retries=0)
    answer = list(sdk.chat.completions.create(model=RETRIED, messages=[{"role": "user", "content": "fall back"}], stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in answer if c.choices) == "fall back"
    assert {c.model for c in answer} == {RETRIED}
    assert len(anthropic_upstream.requests) == 1
