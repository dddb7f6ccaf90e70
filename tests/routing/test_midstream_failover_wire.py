"""Mid-stream fail-over through a real gateway process, as the `openai` and `anthropic` SDKs see
it: one answer (one id, one role chunk, the text once), the seam in a `sluicegate` extension
field, and a ledger row (SQLite and PostgreSQL) with both deployments, each at its own price."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from anthropic import Anthropic
from openai import OpenAI

from tests.governance.conftest import Backend, make_backend
from tests.governance.support import GovGateway, start
from tests.support.anthropic_upstream import AnthropicUpstream
from testsupport.fault_upstream import ARGUMENTS, Fault, FaultUpstream

FULL = Fault().text()  # w0 w1 w2 w3 w4
MESSAGES: Any = [{"role": "user", "content": "w0 w1 w2 w3 w4"}]
TOOLS: Any = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string"}}},
        },
    }
]
DOLLAR = 1_000_000.0  # per million tokens: $1 a token


def config(a: FaultUpstream, b: FaultUpstream, claude: AnthropicUpstream) -> dict[str, Any]:
    def up(url: str, name: str, dollars: float) -> dict[str, Any]:
        price = {"input": 0, "output": dollars * DOLLAR}
        return {"name": name, "provider": "openai", "base_url": url, "api_key": "k", "continue_final_message": True, "price": price}

    anthropic = {"name": "claude", "provider": "anthropic", "base_url": claude.base_url, "api_key": "k"}
    pair = [up(a.base_url, "a", 1), up(b.base_url, "b", 2)]
    common = {"routing": "ordered", "cooldown": False, "max_output_tokens": 50}
    return {
        "models": [
            {"name": "pair", "failover": {"mid_stream": True}, "deployments": pair, **common},
            {"name": "plain", "deployments": pair, **common},
            {"name": "mixed", "failover": True, "deployments": [up(a.base_url, "a", 1), anthropic], **common},
        ]
    }


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory,
    upstream_a: FaultUpstream,
    upstream_b: FaultUpstream,
    anthropic_upstream: AnthropicUpstream,
) -> Iterator[GovGateway]:
    server = start(tmp_path_factory.mktemp("failover"), config(upstream_a, upstream_b, anthropic_upstream))
    yield server
    server.stop()


@pytest.fixture
def client(gateway: GovGateway, a: FaultUpstream, b: FaultUpstream) -> Iterator[tuple[OpenAI, str]]:
    key_id, secret = gateway.new_key()
    yield OpenAI(base_url=gateway.v1, api_key=secret, max_retries=0, timeout=20), key_id


def test_one_answer_through_the_openai_sdk_with_the_seam_in_the_last_chunk(client: tuple[OpenAI, str]) -> None:
    sdk, _ = client
    chunks = list(
        sdk.chat.completions.create(
            model="pair", messages=MESSAGES, stream=True, stream_options={"include_usage": True},
            extra_body={"fault": "reset:after=2"},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == FULL
    assert len({c.id for c in chunks}) == 1
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.role) == 1
    finish = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert [c.choices[0].finish_reason for c in finish] == ["stop"]
    extension = (finish[0].model_extra or {})["sluicegate"]
    (seam,) = extension["seams"]
    assert seam["offset"] == 6 and seam["from"]["deployment"] == "a" and seam["to"]["deployment"] == "b"
    usage = chunks[-1].usage
    assert usage is not None and usage.completion_tokens == 3 + 2  # b's words and a's, summed


def test_the_ledger_row_bills_each_deployment_at_its_own_price(
    gateway: GovGateway, client: tuple[OpenAI, str]
) -> None:
    sdk, key_id = client
    stream = sdk.chat.completions.create(
        model="pair", messages=MESSAGES, stream=True, extra_body={"fault": "reset:after=2"}
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == FULL
    check_ledger(gateway, key_id)


def check_ledger(gateway: GovGateway, key_id: str) -> None:
    (row,) = gateway.rows(key_id, 1)
    assert row["deployment"] == "b" and row["status"] == 200 and row["finish_reason"] == "stop"
    first, second = row["segments"]
    assert (first["deployment"], first["offset"], first["completion_tokens"]) == ("a", 0, 2)
    assert (second["deployment"], second["offset"], second["completion_tokens"]) == ("b", 6, 3)
    assert first["cost_usd"] == 2.0 and second["cost_usd"] == 6.0  # $1 and $2 a token
    assert row["cost_usd"] == 8.0 and row["completion_tokens"] == 5
    assert gateway.key(key_id)["spent_usd"] == 8.0


def test_without_the_option_the_stream_ends_with_the_error_event(client: tuple[OpenAI, str], b: FaultUpstream) -> None:
    sdk, _ = client
    text = ""
    with pytest.raises(openai.APIError):
        for chunk in sdk.chat.completions.create(
            model="plain", messages=MESSAGES, stream=True, extra_body={"fault": "reset:after=2"}
        ):
            text += chunk.choices[0].delta.content or "" if chunk.choices else ""
    assert text == "w0 w1 "
    assert b.attempts == []


def test_a_tool_call_cut_mid_way_reaches_the_sdk_accumulator_once_and_whole(
    client: tuple[OpenAI, str], b: FaultUpstream
) -> None:
    sdk, _ = client
    with sdk.chat.completions.stream(
        model="pair", messages=MESSAGES, tools=TOOLS, extra_body={"fault": "reset:after=3"}
    ) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()
    message = final.choices[0].message
    assert message.content == "w0 "
    assert message.tool_calls is not None and len(message.tool_calls) == 1
    call = message.tool_calls[0]
    assert json.loads(call.function.arguments) == json.loads(ARGUMENTS)
    assert call.id.startswith("call_3_")  # the continuation's call, not the cut one
    assert final.choices[0].finish_reason == "tool_calls"
    assert b.attempts[0].body["messages"][-1] == {"role": "assistant", "content": "w0 "}


def test_the_anthropic_sdk_gets_one_message_continued_by_anthropic_prefill(
    gateway: GovGateway, a: FaultUpstream, anthropic_upstream: AnthropicUpstream
) -> None:
    anthropic_upstream.reset()
    a.enqueue("reset:after=2")  # the Messages door builds the upstream body: the fault is scripted
    _, secret = gateway.new_key()
    sdk = Anthropic(base_url=gateway.gateway.base_url, api_key=secret, max_retries=0, timeout=20)
    with sdk.messages.stream(model="mixed", max_tokens=100, messages=MESSAGES) as stream:
        events = list(stream)
        message = stream.get_final_message()
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].text == "w0 w1 w2 w3 w4"  # Anthropic's prefill lost its space; not doubled
    assert sum(1 for event in events if event.type == "message_start") == 1
    (delta,) = [event for event in events if event.type == "message_delta"]
    (seam,) = (delta.model_extra or {})["sluicegate"]["seams"]
    assert (seam["from"]["deployment"], seam["to"]["deployment"], seam["offset"]) == ("a", "claude", 6)
    sent = anthropic_upstream.requests[-1]["messages"]
    assert sent[-1] == {"role": "assistant", "content": [{"type": "text", "text": "w0 w1"}]}


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    yield from make_backend(request.param, tmp_path)


def test_the_segments_column_on_both_backends(
    backend: Backend, a: FaultUpstream, b: FaultUpstream, anthropic_upstream: AnthropicUpstream
) -> None:
    server = start(backend.data_dir, backend.config(config(a, b, anthropic_upstream)))
    try:
        key_id, secret = server.new_key(budget_usd=1000)  # holds 50 tokens at $2: $100
        sdk = OpenAI(base_url=server.v1, api_key=secret, max_retries=0, timeout=20)
        stream = sdk.chat.completions.create(
            model="pair", messages=MESSAGES, stream=True, extra_body={"fault": "reset:after=2"}
        )
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == FULL
        check_ledger(server, key_id)
        assert server.key(key_id)["reserved_usd"] == 0
    finally:
        server.stop()


def test_the_responses_door_names_the_seam_on_the_response(gateway: GovGateway, a: FaultUpstream) -> None:
    a.enqueue("reset:after=2")  # the Responses door builds the upstream body: the fault is scripted
    _, secret = gateway.new_key()
    sdk = OpenAI(base_url=gateway.v1, api_key=secret, max_retries=0, timeout=20)
    with sdk.responses.stream(model="pair", input="hi") as stream:
        events = list(stream)
        final = stream.get_final_response()
    assert final.output_text == FULL
    assert sum(1 for event in events if event.type == "response.created") == 1
    (seam,) = (final.model_extra or {})["sluicegate"]["seams"]
    assert (seam["from"]["deployment"], seam["to"]["deployment"], seam["offset"]) == ("a", "b", 6)
