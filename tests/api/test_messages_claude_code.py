"""The Messages door takes what Claude Code sends: `role: "system"` entries inside `messages`
(kept in place for an Anthropic upstream, a system message at that position otherwise),
`?beta=true` and its `anthropic-beta` names, `thinking: {type: "adaptive"}`, `output_config`
(effort left to Anthropic, a JSON-schema format honoured), `context_management`, and tools
deferred until a tool search references them."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import pytest

from sluicegate.api.messages.translate import parse_messages_request
from sluicegate.errors import InvalidRequestError
from tests.conftest import UPSTREAM_MODEL
from tests.support.anthropic_upstream import AnthropicUpstream
from tests.support.openai_upstream import OpenAIUpstream
from tests.support.server import LOCAL_MODEL, Gateway, start_gateway

# The betas Claude Code 2.1.332 sends, as it sends them.
CLAUDE_CODE_BETAS = (
    "claude-code-20250219,interleaved-thinking-2025-05-14,context-management-2025-06-27,"
    "mid-conversation-tool-changes-2026-07-01,thinking-token-count-2026-05-13,advanced-tool-use-2025-11-20,"
    "effort-2025-11-24,thinking-display-updates-2026-08-18"
)
ENVIRONMENT = "# Environment\nPrimary working directory: /work"
READ_TOOL = {
    "name": "Read",
    "description": "Reads a file",
    "input_schema": {"type": "object", "properties": {"file_path": {"type": "string"}}, "required": ["file_path"]},
}
DEFERRED_TOOL = {
    "name": "WebFetch",
    "description": "Fetches a URL",
    "input_schema": {"type": "object", "properties": {"url": {"type": "string"}}},
    "defer_loading": True,
}


def claude_code_body(**fields: Any) -> dict[str, Any]:
    """A request shaped as Claude Code sends one for a model it does not know as Claude."""
    body: dict[str, Any] = {
        "model": "m",
        "max_tokens": 32000,
        "system": [
            {"type": "text", "text": "You are a Claude agent."},
            {"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}},
        ],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Say hi"}]},
            {"role": "system", "content": [{"type": "text", "text": ENVIRONMENT, "cache_control": {"type": "ephemeral"}}]},
        ],
        "metadata": {"user_id": '{"device_id":"d","session_id":"s"}'},
        "thinking": {"type": "adaptive", "display": "updates"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "output_config": {"effort": "high"},
        "stream": True,
    }
    body.update(fields)
    return body


def test_a_system_message_inside_messages_stays_at_its_position() -> None:
    chat = parse_messages_request(claude_code_body())
    assert chat.messages == [
        {"role": "system", "content": "You are a Claude agent.\nBe brief."},
        {"role": "user", "content": "Say hi"},
        {"role": "system", "content": ENVIRONMENT},
    ]
    string = parse_messages_request(claude_code_body(messages=[{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]))
    assert string.messages[1:] == [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]


def test_adaptive_thinking_and_effort_ask_nothing_of_other_providers() -> None:
    chat = parse_messages_request(claude_code_body())
    assert chat.reasoning_effort is None and chat.thinking_budget is None and chat.response_format is None
    assert chat.raw["output_config"] == {"effort": "high"} and chat.raw["thinking"]["type"] == "adaptive"


def test_an_output_format_is_a_json_schema_response_format() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    chat = parse_messages_request(claude_code_body(output_config={"effort": "low", "format": {"type": "json_schema", "schema": schema}}))
    assert chat.response_format == {"type": "json_schema", "json_schema": {"name": "output", "schema": schema, "strict": True}}
    with pytest.raises(InvalidRequestError) as missing:
        parse_messages_request(claude_code_body(output_config={"format": {"type": "json_schema"}}))
    assert missing.value.param == "output_config.format.schema"
    with pytest.raises(InvalidRequestError) as wrong:
        parse_messages_request(claude_code_body(output_config={"format": {"type": "xml", "schema": {}}}))
    assert wrong.value.param == "output_config.format.type"


def test_a_deferred_tool_is_offered_once_a_tool_search_references_it() -> None:
    chat = parse_messages_request(claude_code_body(tools=[READ_TOOL, DEFERRED_TOOL]))
    assert [tool["function"]["name"] for tool in chat.tools or []] == ["Read"]
    searched = claude_code_body(
        tools=[READ_TOOL, {"name": "ToolSearch", "input_schema": {"type": "object"}}, DEFERRED_TOOL],
        messages=[
            {"role": "user", "content": "Fetch example.com"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "ToolSearch", "input": {"query": "fetch"}}]},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "tool_reference", "tool_name": "WebFetch"}]}
                ],
            },
        ],
    )
    chat = parse_messages_request(searched)
    assert [tool["function"]["name"] for tool in chat.tools or []] == ["Read", "ToolSearch", "WebFetch"]
    assert {"role": "tool", "tool_call_id": "t1", "content": "Tool WebFetch loaded."} in chat.messages


@pytest.fixture(scope="module")
def claude_gateway(
    tmp_path_factory: pytest.TempPathFactory, upstream: OpenAIUpstream, anthropic_upstream: AnthropicUpstream
) -> Any:
    config = {
        "server": {"keepalive_first_s": 0.05, "keepalive_interval_s": 0.05},
        "models": [
            {"name": LOCAL_MODEL, "provider": "local", "default_max_tokens": 8},
            {"name": UPSTREAM_MODEL, "provider": "openai", "base_url": upstream.base_url, "api_key": "k"},
            {"name": "claude-up", "provider": "anthropic", "base_url": anthropic_upstream.base_url, "api_key": "k"},
        ]
    }
    server = start_gateway(tmp_path_factory.mktemp("claude-code-door"), config)
    yield server
    server.stop()


def post(gateway: Gateway, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(
        gateway.base_url + "/v1/messages?beta=true",
        json=body,
        headers={"x-api-key": gateway.api_key, "anthropic-version": "2023-06-01", "anthropic-beta": CLAUDE_CODE_BETAS},
        timeout=120,
    )


def test_an_anthropic_upstream_gets_the_body_and_betas_as_sent(
    claude_gateway: Gateway, anthropic_upstream: AnthropicUpstream
) -> None:
    anthropic_upstream.reset()
    sent = claude_code_body(model="claude-up")
    response = post(claude_gateway, sent)
    assert response.status_code == 200, response.text
    assert "event: message_stop" in response.text
    received = anthropic_upstream.requests[-1]
    assert received["messages"] == sent["messages"]  # the system entry in place, as sent
    assert received["thinking"] == sent["thinking"] and received["output_config"] == sent["output_config"]
    assert anthropic_upstream.headers[-1]["anthropic-beta"] == CLAUDE_CODE_BETAS


def test_an_openai_upstream_gets_a_system_message_at_that_position(
    claude_gateway: Gateway, upstream: OpenAIUpstream
) -> None:
    upstream.reset()
    response = post(claude_gateway, claude_code_body(model=UPSTREAM_MODEL))
    assert response.status_code == 200, response.text
    received = upstream.requests[-1]
    assert [message["role"] for message in received["messages"]] == ["system", "user", "system"]
    assert received["messages"][2]["content"] == ENVIRONMENT
    assert "reasoning_effort" not in received and "response_format" not in received


def test_the_embedded_model_answers_claude_codes_request(claude_gateway: Gateway) -> None:
    response = post(claude_gateway, claude_code_body(model=LOCAL_MODEL, stream=False, max_tokens=8))
    assert response.status_code == 200, response.text
    assert response.json()["type"] == "message"


def test_a_long_prompt_reports_its_progress_in_the_keepalives(claude_gateway: Gateway) -> None:
    """The embedded model reads a long prompt one batch at a time; meanwhile the stream's
    keep-alives (Anthropic's `ping`) follow an SSE comment saying how far it got."""
    words = " ".join(f"item{index}" for index in range(300))  # about 1,000 tokens, new to the cache
    body = claude_code_body(
        model=LOCAL_MODEL, max_tokens=4, messages=[{"role": "user", "content": f"{uuid.uuid4()} {words}"}]
    )
    with httpx.stream(
        "POST",
        claude_gateway.base_url + "/v1/messages?beta=true",
        json=body,
        headers={"x-api-key": claude_gateway.api_key, "anthropic-beta": CLAUDE_CODE_BETAS},
        timeout=120,
    ) as response:
        raw = response.read()
    assert response.status_code == 200
    notes = re.findall(rb": prompt: (\d+) of (\d+) tokens read\nevent: ping\n", raw)
    assert notes, raw[:2000]
    read, total = (int(value) for value in notes[0])
    assert 0 < read < total and total > 600
    assert b"event: message_stop" in raw
