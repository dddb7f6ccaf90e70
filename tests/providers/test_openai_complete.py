"""The `openai` provider answering whole (stream false): text, tool calls, choices and usage."""

from __future__ import annotations

from openai import OpenAI

from tests.conftest import UPSTREAM_MODEL
from tests.support.openai_calls import (
    MESSAGES,
    TOOLS,
    completion_body,
)
from tests.support.openai_upstream import OpenAIUpstream, Reply


def test_non_streaming_text(client: OpenAI, clean_upstream: OpenAIUpstream) -> None:
    clean_upstream.enqueue(
        Reply(
            body=completion_body(
                [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "Hello!"},
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                ]
            )
        )
    )
    answer = client.chat.completions.create(model=UPSTREAM_MODEL, messages=MESSAGES, user="u1")
    assert answer.object == "chat.completion" and answer.model == UPSTREAM_MODEL
    assert answer.id.startswith("chatcmpl-")
    assert answer.choices[0].message.content == "Hello!"
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage is not None
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens, answer.usage.total_tokens) == (
        7,
        3,
        10,
    )
    [sent] = clean_upstream.requests
    assert sent["model"] == "gpt-4o-mini" and sent["stream"] is False and sent["user"] == "u1"
    assert "stream_options" not in sent


def test_non_streaming_tool_calls(client: OpenAI, clean_upstream: OpenAIUpstream) -> None:
    calls = [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
        },
        {
            "id": "call_2",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Nice"}'},
        },
    ]
    clean_upstream.enqueue(
        Reply(
            body=completion_body(
                [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": None, "tool_calls": calls},
                        "logprobs": None,
                        "finish_reason": "tool_calls",
                    }
                ]
            )
        )
    )
    answer = client.chat.completions.create(model=UPSTREAM_MODEL, messages=MESSAGES, tools=TOOLS)
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    got = [(c.id, c.type, c.function.name, c.function.arguments) for c in choice.message.tool_calls or []]
    assert got == [(c["id"], "function", c["function"]["name"], c["function"]["arguments"]) for c in calls]


def test_non_streaming_n_choices_and_usage_details(client: OpenAI, clean_upstream: OpenAIUpstream) -> None:
    usage = {
        "prompt_tokens": 5,
        "completion_tokens": 4,
        "total_tokens": 9,
        "completion_tokens_details": {"reasoning_tokens": 2},
    }
    clean_upstream.enqueue(
        Reply(
            body=completion_body(
                [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "one"},
                        "logprobs": None,
                        "finish_reason": "stop",
                    },
                    {
                        "index": 1,
                        "message": {"role": "assistant", "content": "two"},
                        "logprobs": None,
                        "finish_reason": "length",
                    },
                ],
                usage,
            )
        )
    )
    answer = client.chat.completions.create(model=UPSTREAM_MODEL, messages=MESSAGES, n=2)
    assert [(c.index, c.message.content, c.finish_reason) for c in answer.choices] == [
        (0, "one", "stop"),
        (1, "two", "length"),
    ]
    assert answer.usage is not None and answer.usage.completion_tokens_details is not None
    assert answer.usage.completion_tokens_details.reasoning_tokens == 2
