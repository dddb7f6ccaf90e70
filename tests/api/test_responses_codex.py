"""The Responses door takes what Codex sends: `namespace` tools (offered as functions, their
calls returned with `name` and `namespace`), hosted tools (left out with a header and a log line,
or refused where the model entry says so), and OpenAI's documented top-level fields only (an
unknown one is a 400, as the chat door's embedded model answers one)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import orjson
import pytest
from openai import OpenAI

from sluicegate.api.responses.encoder import ResponseEncoder
from sluicegate.api.responses.request import parse_responses_request
from sluicegate.core.events import Finish, ToolCallDelta
from sluicegate.errors import InvalidRequestError
from tests.support.openai_calls import tool_delta, usage_chunk
from tests.support.openai_upstream import OpenAIUpstream, Reply, chunk
from tests.support.server import Gateway, start_gateway

MODEL = "codex-up"
STRICT_MODEL = "codex-strict"
AGENTS: Any = {
    "type": "namespace",
    "name": "multi_agent_v1",
    "description": "Tools for sub-agents.",
    "tools": [
        {
            "type": "function",
            "name": "spawn_agent",
            "description": "Start an agent.",
            "strict": False,
            "parameters": {"type": "object", "properties": {"task": {"type": "string"}}, "required": ["task"]},
        },
        {"type": "function", "name": "close_agent", "parameters": {"type": "object", "properties": {}}},
    ],
}
EXEC: Any = {
    "type": "function",
    "name": "exec_command",
    "strict": False,
    "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}, "required": ["cmd"]},
}


def test_namespace_tools_are_offered_as_functions() -> None:
    parsed = parse_responses_request({"model": "m", "input": "x", "tools": [EXEC, AGENTS]})
    chat = parsed.chat_request([])
    offered = [tool["function"] for tool in chat.tools or []]
    assert [function["name"] for function in offered] == [
        "exec_command",
        "multi_agent_v1__spawn_agent",
        "multi_agent_v1__close_agent",
    ]
    assert offered[1]["description"] == "Tools for sub-agents.\n\nStart an agent."
    assert offered[1]["parameters"] == AGENTS["tools"][0]["parameters"]
    assert parsed.namespaced == {
        "multi_agent_v1__spawn_agent": ("multi_agent_v1", "spawn_agent"),
        "multi_agent_v1__close_agent": ("multi_agent_v1", "close_agent"),
    }
    assert parsed.tools[1]["type"] == "namespace" and parsed.tools[1]["name"] == "multi_agent_v1"


def test_a_replayed_namespaced_call_and_a_named_choice_use_the_offered_name() -> None:
    parsed = parse_responses_request(
        {
            "model": "m",
            "tools": [AGENTS],
            "tool_choice": {"type": "function", "name": "spawn_agent", "namespace": "multi_agent_v1"},
            "input": [
                {"role": "user", "content": "Split the work."},
                {
                    "type": "function_call",
                    "call_id": "c1",
                    "name": "spawn_agent",
                    "namespace": "multi_agent_v1",
                    "arguments": '{"task": "a"}',
                },
                {"type": "function_call_output", "call_id": "c1", "output": "agent 1 started"},
            ],
        }
    )
    assert parsed.input_items[1]["namespace"] == "multi_agent_v1"
    chat = parsed.chat_request([])
    assert chat.messages[1]["tool_calls"][0]["function"]["name"] == "multi_agent_v1__spawn_agent"
    assert chat.tool_choice == {"type": "function", "function": {"name": "multi_agent_v1__spawn_agent"}}


def test_a_namespaced_call_is_returned_with_its_namespace() -> None:
    parsed = parse_responses_request({"model": "m", "input": "x", "tools": [AGENTS]})
    encoder = ResponseEncoder({"id": "resp_1", "output": []}, namespaced=parsed.namespaced)
    raw = encoder.encode_batch(
        [
            ToolCallDelta(index=0, id="call_1", name="multi_agent_v1__spawn_agent", arguments='{"task"'),
            ToolCallDelta(index=0, arguments=': "a"}'),
            Finish(reason="tool_calls"),
        ]
    )
    raw += encoder.close()
    call = encoder.resource["output"][0]
    assert (call["type"], call["name"], call["namespace"], call["arguments"]) == (
        "function_call",
        "spawn_agent",
        "multi_agent_v1",
        '{"task": "a"}',
    )
    added = next(line for line in raw.split(b"\n") if b'"response.output_item.added"' in line and line.startswith(b"data:"))
    assert orjson.loads(added[5:])["item"]["namespace"] == "multi_agent_v1"


def test_hosted_tools_are_noted_not_offered() -> None:
    parsed = parse_responses_request(
        {"model": "m", "input": "x", "tools": [EXEC, {"type": "web_search", "external_web_access": False}]}
    )
    assert parsed.hosted_tools == [("tools[1].type", "web_search")]
    assert [tool["function"]["name"] for tool in parsed.chat_request([]).tools or []] == ["exec_command"]


def test_unknown_top_level_fields_are_refused_and_documented_ones_accepted() -> None:
    with pytest.raises(InvalidRequestError) as unknown:
        parse_responses_request({"model": "m", "input": "x", "temprature": 0.5})
    assert (unknown.value.param, unknown.value.code) == ("temprature", "unknown_parameter")
    assert "Unrecognized request argument supplied: temprature" in unknown.value.message
    codex_fields = {
        "client_metadata": {"x-codex-turn-metadata": "{}"},
        "prompt_cache_key": "k",
        "include": ["reasoning.encrypted_content"],
        "reasoning": {"summary": "auto"},
        "store": False,
        "context_management": [{"type": "compaction", "compact_threshold": 1000}],
        "prompt_cache_retention": "24h",
        "stream_options": {"include_obfuscation": False},
    }
    parse_responses_request({"model": "m", "input": "x", **codex_fields})
    with pytest.raises(InvalidRequestError) as moderation:
        parse_responses_request({"model": "m", "input": "x", "moderation": {"mode": "block"}})
    assert (moderation.value.param, moderation.value.code) == ("moderation", "unsupported_parameter")


def test_a_namespace_holding_a_tool_of_another_type_is_refused() -> None:
    bad = {**AGENTS, "tools": [{"type": "custom", "name": "patch"}]}
    with pytest.raises(InvalidRequestError) as refused:
        parse_responses_request({"model": "m", "input": "x", "tools": [bad]})
    assert refused.value.param == "tools[0].tools[0].type"


# --- through a live gateway -----------------------------------------------------------------


@pytest.fixture(scope="module")
def codex_gateway(tmp_path_factory: pytest.TempPathFactory, upstream: OpenAIUpstream) -> Iterator[Gateway]:
    entry = {"provider": "openai", "base_url": upstream.base_url, "api_key": "k", "upstream_model": "gpt-4.1"}
    config = {"models": [{"name": MODEL, **entry}, {"name": STRICT_MODEL, "hosted_tools": "refuse", **entry}]}
    server = start_gateway(tmp_path_factory.mktemp("codex-door"), config)
    yield server
    server.stop()


@pytest.fixture
def client(codex_gateway: Gateway) -> OpenAI:
    return OpenAI(base_url=codex_gateway.v1, api_key=codex_gateway.api_key, max_retries=0)


def test_a_namespaced_call_round_trip_with_the_sdk(client: OpenAI, clean_upstream: OpenAIUpstream) -> None:
    clean_upstream.enqueue(
        Reply(
            chunks=[
                chunk(role="assistant", content=None),
                chunk(tool_calls=[tool_delta(0, '{"task": "tests"}', id="call_n1", name="multi_agent_v1__spawn_agent")]),
                chunk(finish="tool_calls"),
                usage_chunk(30, 8),
                b"data: [DONE]\n\n",
            ]
        )
    )
    with client.responses.stream(model=MODEL, input="Run the tests in a sub-agent.", tools=[EXEC, AGENTS]) as stream:
        response = stream.get_final_response()
    call = response.output[0]
    assert call.type == "function_call"
    assert (call.name, call.namespace, call.call_id) == ("spawn_agent", "multi_agent_v1", "call_n1")
    offered = [tool["function"]["name"] for tool in clean_upstream.requests[-1]["tools"]]
    assert offered == ["exec_command", "multi_agent_v1__spawn_agent", "multi_agent_v1__close_agent"]


def test_hosted_tools_are_left_out_with_a_header_and_a_log_line(
    codex_gateway: Gateway, clean_upstream: OpenAIUpstream
) -> None:
    body = {
        "model": MODEL,
        "input": "Hi there",
        "tools": [EXEC, {"type": "web_search", "external_web_access": False}, {"type": "image_generation"}],
    }
    response = httpx.post(
        codex_gateway.v1 + "/responses", json=body, headers={"Authorization": f"Bearer {codex_gateway.api_key}"}, timeout=20
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-sluicegate-omitted-tools"] == "web_search,image_generation"
    assert [tool["function"]["name"] for tool in clean_upstream.requests[-1]["tools"]] == ["exec_command"]
    line = next(line for line in codex_gateway.log().splitlines() if "hosted tools left out" in line)
    assert MODEL in line and "web_search,image_generation" in line


def test_a_model_entry_can_refuse_hosted_tools(client: OpenAI, clean_upstream: OpenAIUpstream) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.create(model=STRICT_MODEL, input="Hi", tools=[EXEC, {"type": "web_search"}])
    assert refused.value.param == "tools[1].type" and refused.value.code == "unsupported_parameter"
    assert not clean_upstream.requests


def test_an_unknown_field_is_a_400_through_the_sdk(client: OpenAI, clean_upstream: OpenAIUpstream) -> None:
    with pytest.raises(openai.BadRequestError) as unknown:
        client.responses.create(model=MODEL, input="Hi", extra_body={"verbosity": "low"})
    assert unknown.value.code == "unknown_parameter" and unknown.value.param == "verbosity"
    assert not clean_upstream.requests
