"""The official `anthropic` SDK, sync and async, against a live gateway on the embedded model,
with only the base URL and key changed; and the raw bytes of its stream."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx
import pytest
from anthropic import Anthropic, AsyncAnthropic

from tests.support.anthropic_wire import blocks_of, check_sequence, parse_events
from tests.support.server import Gateway

PROMPT: Any = [{"role": "user", "content": "Write a short poem about rivers."}]
SYSTEM = "You are a poet."
GREEDY = {"temperature": 0}  # repeatable on the embedded model; not a named argument in this SDK


@pytest.fixture
def client(gateway: Gateway) -> Anthropic:
    return Anthropic(base_url=gateway.base_url, api_key=gateway.api_key, max_retries=0)


@pytest.fixture
def async_client(gateway: Gateway) -> AsyncAnthropic:
    return AsyncAnthropic(base_url=gateway.base_url, api_key=gateway.api_key, max_retries=0)


def prompt_of(usage: Any) -> int:
    """The whole prompt of an Anthropic usage: its input tokens, read from the cache or not."""
    return int(usage.input_tokens + (usage.cache_read_input_tokens or 0) + (usage.cache_creation_input_tokens or 0))


def test_sync_create_stream_yields_anthropics_event_sequence(client: Anthropic, gateway: Gateway) -> None:
    events = list(client.messages.create(model=gateway.model, max_tokens=16, messages=PROMPT, stream=True))
    kinds = [event.type for event in events]
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    assert kinds[1] == "content_block_start" and kinds[-3] == "content_block_stop"
    assert set(kinds[2:-3]) == {"content_block_delta"}
    start = events[0].message  # type: ignore[union-attr]
    assert start.id.startswith("msg_") and start.model == gateway.model and start.role == "assistant"
    assert prompt_of(start.usage) > 10
    text = "".join(
        e.delta.text for e in events if e.type == "content_block_delta" and e.delta.type == "text_delta"
    )
    assert text.strip()
    delta = events[-2]
    assert delta.type == "message_delta"
    assert delta.delta.stop_reason in ("end_turn", "max_tokens")
    assert 0 < delta.usage.output_tokens <= 16


def test_stream_helper_text_stream_and_final_message(client: Anthropic, gateway: Gateway) -> None:
    with client.messages.stream(model=gateway.model, max_tokens=24, system=SYSTEM, messages=PROMPT) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(pieces) > 1
    assert final.id.startswith("msg_") and final.type == "message" and final.role == "assistant"
    assert [block.type for block in final.content] == ["text"]
    assert final.content[0].text == "".join(pieces)  # type: ignore[union-attr]
    assert final.stop_reason in ("end_turn", "max_tokens")
    count = client.messages.count_tokens(model=gateway.model, system=SYSTEM, messages=PROMPT)
    # Anthropic's input_tokens leave out what was read from the cache (the embedded model
    # reuses a prompt prefix an earlier request left): the three together are the prompt
    assert prompt_of(final.usage) == count.input_tokens
    assert final.usage.cache_creation_input_tokens == 0
    assert 0 < final.usage.output_tokens <= 24


def test_non_streaming_create_stops_at_max_tokens(client: Anthropic, gateway: Gateway) -> None:
    message = client.messages.create(model=gateway.model, max_tokens=5, messages=PROMPT)
    assert message.id.startswith("msg_") and message.model == gateway.model
    assert message.type == "message" and message.role == "assistant"
    assert [block.type for block in message.content] == ["text"] and message.content[0].text  # type: ignore[union-attr]
    assert message.stop_reason == "max_tokens" and message.stop_sequence is None
    assert message.usage.output_tokens == 5 and prompt_of(message.usage) > 10


def test_stop_sequences_end_the_answer_with_stop_reason_stop_sequence(
    client: Anthropic, gateway: Gateway
) -> None:
    whole = client.messages.create(model=gateway.model, max_tokens=40, messages=PROMPT, extra_body=GREEDY)
    text = whole.content[0].text  # type: ignore[union-attr]
    assert "e" in text  # the sequence the next call stops at is in the greedy answer
    stopped = client.messages.create(
        model=gateway.model, max_tokens=40, messages=PROMPT, stop_sequences=["e"], extra_body=GREEDY
    )
    assert stopped.stop_reason == "stop_sequence" and stopped.stop_sequence == "e"
    assert stopped.content[0].text == text[: text.index("e")]  # type: ignore[union-attr]
    with client.messages.stream(
        model=gateway.model, max_tokens=40, messages=PROMPT, stop_sequences=["e"], extra_body=GREEDY
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "stop_sequence" and final.stop_sequence == "e"


def test_a_conversation_with_history_and_system_blocks(client: Anthropic, gateway: Gateway) -> None:
    messages: Any = [
        {"role": "user", "content": [{"type": "text", "text": "Name a river."}]},
        {"role": "assistant", "content": [{"type": "text", "text": "The Nile."}]},
        {"role": "user", "content": "Name another one."},
    ]
    system: Any = [{"type": "text", "text": "Answer in one line.", "cache_control": {"type": "ephemeral"}}]
    message = client.messages.create(
        model=gateway.model, max_tokens=12, system=system, messages=messages, metadata={"user_id": "u-1"}
    )
    assert message.content and prompt_of(message.usage) == (
        client.messages.count_tokens(model=gateway.model, system=system, messages=messages).input_tokens
    )


def test_count_tokens_is_exact_from_the_models_tokenizer(client: Anthropic, gateway: Gateway) -> None:
    raw = client.messages.with_raw_response.count_tokens(model=gateway.model, messages=PROMPT)
    assert raw.headers["x-sluicegate-token-count"] == "exact"
    counted = raw.parse().input_tokens
    longer = client.messages.count_tokens(
        model=gateway.model, messages=[{"role": "user", "content": PROMPT[0]["content"] + " Please rhyme."}]
    )
    assert 10 < counted < longer.input_tokens
    message = client.messages.create(model=gateway.model, max_tokens=1, messages=PROMPT)
    assert prompt_of(message.usage) == counted


def test_a_bearer_token_works_as_well_as_x_api_key(gateway: Gateway) -> None:
    client = Anthropic(base_url=gateway.base_url, auth_token=gateway.api_key, max_retries=0)
    assert client.messages.create(model=gateway.model, max_tokens=2, messages=PROMPT).content


def test_errors_are_the_sdks_typed_exceptions(client: Anthropic, gateway: Gateway) -> None:
    wrong = Anthropic(base_url=gateway.base_url, api_key="sk-sg-wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as auth:
        wrong.messages.create(model=gateway.model, max_tokens=5, messages=PROMPT)
    assert auth.value.status_code == 401 and auth.value.type == "authentication_error"  # type: ignore[attr-defined]
    with pytest.raises(anthropic.NotFoundError) as missing:
        client.messages.create(model="claude-nonexistent", max_tokens=5, messages=PROMPT, stream=True)
    assert missing.value.body == {  # type: ignore[comparison-overlap]
        "type": "error",
        "error": {
            "type": "not_found_error",
            "message": "The model `claude-nonexistent` does not exist or you do not have access to it.",
        },
    }
    with pytest.raises(anthropic.NotFoundError):
        client.messages.count_tokens(model="claude-nonexistent", messages=PROMPT)
    with pytest.raises(anthropic.BadRequestError) as bad:
        client.messages.create(
            model=gateway.model, max_tokens=5, messages=PROMPT, extra_body={"temperature": 3}
        )
    # the body as sent (the SDK's own `message` wording differs between its releases)
    assert bad.value.body == {  # type: ignore[comparison-overlap]
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "temperature: Input should be less than or equal to 1"},
    }
    with pytest.raises(anthropic.BadRequestError, match="'tool_choice' names 'later', which is not among the tools"):
        client.messages.create(
            model=gateway.model,
            max_tokens=5,
            messages=PROMPT,
            tools=[{"name": "now", "input_schema": {"type": "object"}}],
            tool_choice={"type": "tool", "name": "later"},
        )
    image: Any = {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
    }
    with pytest.raises(anthropic.BadRequestError, match="only reads text"):
        client.messages.create(
            model=gateway.model, max_tokens=5, messages=[{"role": "user", "content": [image]}]
        )


async def test_async_create_stream_and_stream_helper(async_client: AsyncAnthropic, gateway: Gateway) -> None:
    kinds = [
        event.type
        async for event in await async_client.messages.create(
            model=gateway.model, max_tokens=8, messages=PROMPT, stream=True
        )
    ]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    async with async_client.messages.stream(model=gateway.model, max_tokens=12, messages=PROMPT) as stream:
        text = "".join([piece async for piece in stream.text_stream])
        final = await stream.get_final_message()
    assert text and final.content[0].text == text  # type: ignore[union-attr]
    assert final.usage.output_tokens <= 12
    message = await async_client.messages.create(model=gateway.model, max_tokens=3, messages=PROMPT)
    assert message.stop_reason == "max_tokens"
    count = await async_client.messages.count_tokens(model=gateway.model, messages=PROMPT)
    assert count.input_tokens == prompt_of(message.usage)
    with pytest.raises(anthropic.AuthenticationError):
        await AsyncAnthropic(base_url=gateway.base_url, api_key="nope", max_retries=0).messages.create(
            model=gateway.model, max_tokens=3, messages=PROMPT
        )


def test_the_raw_stream_follows_the_documented_order_field_by_field(gateway: Gateway) -> None:
    body = {"model": gateway.model, "max_tokens": 10, "stream": True, "messages": PROMPT}
    headers = {"x-api-key": gateway.api_key, "anthropic-version": "2023-06-01"}
    with httpx.stream(
        "POST", gateway.base_url + "/v1/messages", json=body, headers=headers, timeout=60
    ) as response:
        raw = response.read()
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["request-id"] == response.headers["x-request-id"]
    events = parse_events(raw)
    check_sequence(events)
    assert [name for name, _ in events[:2]] == ["message_start", "ping"]
    count = httpx.post(gateway.base_url + "/v1/messages/count_tokens", json=body, headers=headers).json()
    assert events[0][1]["message"]["usage"] == {"input_tokens": count["input_tokens"], "output_tokens": 0}
    assert [block["type"] for block in blocks_of(events)] == ["text"]
    assert events[-2][1]["delta"] == {"stop_reason": "max_tokens", "stop_sequence": None}
    usage = events[-2][1]["usage"]
    assert set(usage) == {"input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "output_tokens"}
    assert usage["input_tokens"] + usage["cache_read_input_tokens"] == count["input_tokens"]
    assert usage["cache_creation_input_tokens"] == 0 and usage["output_tokens"] == 10
