"""Counting tokens without the upstream's usage (offline), and prices."""

from __future__ import annotations

import pytest

from sluicegate.core.events import Usage
from sluicegate.core.exchange import Exchange
from sluicegate.core.request import ChatRequest
from sluicegate.governance.pricing import cost_nanos, estimate_nanos
from sluicegate.governance.tokens import TokenCounter, message_text, openai_encoding_name, prompt_estimate
from sluicegate.model_config.entry import Price


def test_encodings_of_openai_families() -> None:
    assert openai_encoding_name("gpt-4o-mini") == "o200k_base"
    assert openai_encoding_name("openai/gpt-4.1") == "o200k_base"
    assert openai_encoding_name("o3-mini") == "o200k_base"
    assert openai_encoding_name("gpt-4") == "cl100k_base"
    assert openai_encoding_name("gpt-4-turbo") == "cl100k_base"
    assert openai_encoding_name("gpt-3.5-turbo") == "cl100k_base"
    assert openai_encoding_name("llama3") is None
    assert openai_encoding_name("claude-sonnet-4") is None


def exchange(model: str, text: list[str], **fields: object) -> Exchange:
    chat = ChatRequest(model=model, messages=[{"role": "user", "content": "Say hello to the world"}], raw={})
    return Exchange(
        request_id="r", door="chat_completions", model=model, upstream_model=model, request=chat,
        output_parts=text, attempts=1, **fields,  # type: ignore[arg-type]
    )


async def test_openai_models_are_counted_with_their_encoding_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    usage, source = await TokenCounter().usage_for(exchange("gpt-4o", ["Hello", " world", " again"]), None)
    assert source == "tokenizer"
    assert usage.completion_tokens == 3
    assert usage.prompt_tokens == 5 + 1 + 3 + 3  # the words, the role, and the chat format's overhead
    assert usage.estimated


async def test_other_models_get_the_documented_estimate() -> None:
    usage, source = await TokenCounter().usage_for(exchange("llama3", ["x" * 41]), None)
    assert source == "estimate"
    assert usage.completion_tokens == 11  # ceil(41 / 4)


async def test_upstream_usage_wins_and_nothing_started_is_nothing() -> None:
    counter = TokenCounter()
    sent = Usage(7, 9)
    assert await counter.usage_for(exchange("gpt-4o", ["a"], usage=sent), None) == (sent, "upstream")
    refused = Exchange(request_id="r", door="chat_completions", model="gpt-4o")
    assert await counter.usage_for(refused, None) == (Usage(0, 0), "none")


def test_prompt_estimate_is_characters_over_four_plus_framing() -> None:
    chat = ChatRequest(model="m", messages=[{"role": "user", "content": "x" * 40}], raw={})
    assert prompt_estimate(chat) == 10 + 3 + 3  # 40 / 4 for the text, 3 per message, 3 to reply


def test_prompt_estimate_counts_at_least_what_message_text_finds() -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "abc"}, {"type": "image_url"}, "odd"]},
        {"role": "assistant", "content": None, "tool_calls": [{"function": {"name": "f", "arguments": "{}"}}, 7]},
        {"role": "tool", "content": "42", "tool_call_id": "c1"},
        {"content": "no role"},
    ]
    chat = ChatRequest(model="m", messages=messages, raw={})
    texts = sum(-(-len(text) // 4) + 3 for text in message_text(messages)) + 3
    image = 2322  # an image of unknown size, for no provider in particular: the highest rule's most
    assert prompt_estimate(chat) >= texts + image


def test_costs() -> None:
    price = Price(input=2.5, cached_input=1.25, output=10)
    usage = Usage(prompt_tokens=1000, completion_tokens=200, cached_tokens=400)
    # 600 * 2.5 + 400 * 1.25 + 200 * 10 per million = $0.004
    assert cost_nanos(price, usage) == 4_000_000
    assert cost_nanos(None, usage) == 0
    written = Price(input=3, cache_write=3.75, output=15)
    assert cost_nanos(written, Usage(prompt_tokens=100, completion_tokens=0, cache_creation_tokens=100)) == 375_000
    assert estimate_nanos(price, 100, 50) == 750_000
