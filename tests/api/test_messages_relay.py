"""The byte relay, live, on the Messages door: the real `anthropic` SDK on an Anthropic upstream
gets the answer the translated path gives (the text events' text as the upstream escaped it), and
the ledger has the upstream's usage; the same upstream with `passthrough: false` for comparison."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest

from tests.governance.support import GovGateway, start
from tests.support.anthropic_upstream import AnthropicUpstream, Reply

RELAYED, TRANSLATED = "claude-relayed", "claude-translated"
PRICE = {"input": 1_000_000.0, "output": 2_000_000.0}


@pytest.fixture(scope="module")
def gov(tmp_path_factory: pytest.TempPathFactory, anthropic_upstream: AnthropicUpstream) -> Iterator[GovGateway]:
    entry = {"provider": "anthropic", "base_url": anthropic_upstream.base_url, "api_key": "a", "price": PRICE}
    config = {"models": [{"name": RELAYED, **entry}, {"name": TRANSLATED, **entry, "passthrough": False}]}
    server = start(tmp_path_factory.mktemp("messages-relay"), config)
    yield server
    server.stop()


def delta(text: bytes) -> bytes:
    return (
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
        b'"delta":{"type":"text_delta","text":"' + text + b'"}}\n\n'
    )


ANSWER = [
    b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_up","type":"message",'
    b'"role":"assistant","content":[],"model":"claude-sonnet-4-5","stop_reason":null,"stop_sequence":null,'
    b'"usage":{"input_tokens":12,"output_tokens":1}}}\n\n',
    b'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
    b'"content_block":{"type":"text","text":""}}\n\n',
    b'event: ping\ndata: {"type": "ping"}\n\n',
    delta(b"Bonjour"),
    delta(b", caf\\u00e9"),
    delta(b' \\"ok\\"'),
    b'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n',
    b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},'
    b'"usage":{"output_tokens":5}}\n\n',
    b'event: message_stop\ndata: {"type":"message_stop"}\n\n',
]
TEXT = 'Bonjour, caf\u00e9 "ok"'


def raw_stream(gov: GovGateway, secret: str, model: str) -> bytes:
    body: dict[str, Any] = {"model": model, "max_tokens": 64, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    with httpx.stream(
        "POST", gov.v1 + "/messages", json=body, headers={"x-api-key": secret, "anthropic-version": "2023-06-01"},
        timeout=30,
    ) as response:
        assert response.status_code == 200
        return response.read()


def test_the_messages_client_gets_the_translated_paths_stream(
    gov: GovGateway, anthropic_upstream: AnthropicUpstream
) -> None:
    anthropic_upstream.reset()
    _, secret = gov.new_key()
    anthropic_upstream.enqueue(Reply(chunks=ANSWER), Reply(chunks=ANSWER))
    relayed, translated = raw_stream(gov, secret, RELAYED), raw_stream(gov, secret, TRANSLATED)
    assert b"caf\\u00e9" in relayed and "caf\u00e9".encode() in translated  # the relayed text was not decoded

    def neutral(raw: bytes, model: str) -> bytes:
        start = raw.index(b'"id":"') + 6
        message_id = raw[start : raw.index(b'"', start)]
        return raw.replace(message_id, b"ID").replace(model.encode(), b"M")

    assert neutral(relayed, RELAYED) == neutral(translated, TRANSLATED).replace("caf\u00e9".encode(), b"caf\\u00e9")


def test_the_anthropic_sdk_reads_a_relayed_stream_and_the_ledger_has_its_usage(
    gov: GovGateway, anthropic_upstream: AnthropicUpstream
) -> None:
    anthropic_upstream.reset()
    key_id, secret = gov.new_key()
    anthropic_upstream.enqueue(Reply(chunks=ANSWER))
    client = anthropic.Anthropic(base_url=gov.gateway.base_url, api_key=secret, max_retries=0)
    with client.messages.stream(model=RELAYED, max_tokens=64, messages=[{"role": "user", "content": "hi"}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == TEXT
    assert final.stop_reason == "end_turn" and final.usage.output_tokens == 5
    (row,) = gov.rows(key_id, 1)
    assert (row["model"], row["status"], row["prompt_tokens"], row["completion_tokens"]) == (RELAYED, 200, 12, 5)
    assert row["usage_source"] == "upstream" and row["cost_usd"] == pytest.approx(12 * 1 + 5 * 2)
