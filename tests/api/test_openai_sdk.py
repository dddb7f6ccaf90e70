"""The official OpenAI SDK, sync and async, against a live gateway on the embedded model."""

from __future__ import annotations

import openai
import pytest
from openai import AsyncOpenAI, OpenAI

from tests.support.server import Gateway

PROMPT = [{"role": "user", "content": "Write a short poem about rivers."}]


@pytest.fixture
def client(gateway: Gateway) -> OpenAI:
    return OpenAI(base_url=gateway.v1, api_key=gateway.api_key, max_retries=0)


@pytest.fixture
def async_client(gateway: Gateway) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=gateway.v1, api_key=gateway.api_key, max_retries=0)


def test_sync_stream_yields_text_then_a_finish_chunk(client: OpenAI, gateway: Gateway) -> None:
    stream = client.chat.completions.create(model=gateway.model, messages=PROMPT, stream=True, max_tokens=24)
    chunks = list(stream)
    ids = {chunk.id for chunk in chunks}
    assert len(ids) == 1 and ids.pop().startswith("chatcmpl-")
    assert len({chunk.created for chunk in chunks}) == 1
    assert all(chunk.object == "chat.completion.chunk" for chunk in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks)
    assert text.strip()
    assert all(chunk.choices[0].finish_reason is None for chunk in chunks[:-1])
    last = chunks[-1].choices[0]
    assert last.finish_reason in ("stop", "length")
    assert last.delta.content is None and last.delta.tool_calls is None


def test_max_tokens_reached_finishes_with_length(client: OpenAI, gateway: Gateway) -> None:
    stream = client.chat.completions.create(
        model=gateway.model,
        messages=PROMPT,
        stream=True,
        max_tokens=5,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["length"]
    usage_chunk = chunks[-1]
    assert usage_chunk.choices == []
    assert usage_chunk.usage is not None
    assert usage_chunk.usage.completion_tokens == 5
    assert usage_chunk.usage.prompt_tokens > 10
    assert usage_chunk.usage.total_tokens == usage_chunk.usage.prompt_tokens + 5
    assert all(c.usage is None for c in chunks[:-1])


def test_max_completion_tokens_is_honoured(client: OpenAI, gateway: Gateway) -> None:
    answer = client.chat.completions.create(model=gateway.model, messages=PROMPT, max_completion_tokens=3)
    assert answer.choices[0].finish_reason == "length"
    assert answer.usage is not None and answer.usage.completion_tokens == 3


def test_non_streaming_returns_a_completion_with_usage(client: OpenAI, gateway: Gateway) -> None:
    answer = client.chat.completions.create(model=gateway.model, messages=PROMPT, max_tokens=12)
    assert answer.object == "chat.completion"
    assert answer.id.startswith("chatcmpl-")
    assert answer.model == gateway.model
    assert answer.choices[0].message.role == "assistant"
    assert answer.choices[0].message.content
    assert answer.usage is not None and 0 < answer.usage.completion_tokens <= 12


def test_temperature_zero_with_seed_is_repeatable(client: OpenAI, gateway: Gateway) -> None:
    def run() -> str:
        answer = client.chat.completions.create(
            model=gateway.model, messages=PROMPT, max_tokens=20, temperature=0, seed=7
        )
        return answer.choices[0].message.content or ""

    assert run() == run()


def test_streamed_and_whole_answers_agree_at_temperature_zero(client: OpenAI, gateway: Gateway) -> None:
    whole = client.chat.completions.create(model=gateway.model, messages=PROMPT, max_tokens=16, temperature=0)
    stream = client.chat.completions.create(
        model=gateway.model, messages=PROMPT, max_tokens=16, temperature=0, stream=True
    )
    streamed = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert streamed == whole.choices[0].message.content


def test_n_choices_are_generated_and_indexed(client: OpenAI, gateway: Gateway) -> None:
    stream = client.chat.completions.create(
        model=gateway.model, messages=PROMPT, max_tokens=4, n=2, stream=True, seed=1
    )
    finishes = {c.choices[0].index: c.choices[0].finish_reason for c in stream if c.choices[0].finish_reason}
    assert finishes == {0: "length", 1: "length"}


def test_stop_sequence_ends_the_answer_before_it(client: OpenAI, gateway: Gateway) -> None:
    base = client.chat.completions.create(model=gateway.model, messages=PROMPT, max_tokens=30, temperature=0)
    text = base.choices[0].message.content or ""
    words = text.split()
    assert len(words) > 3
    stop = words[2]
    cut = client.chat.completions.create(
        model=gateway.model, messages=PROMPT, max_tokens=30, temperature=0, stop=[stop]
    )
    assert cut.choices[0].finish_reason == "stop"
    assert cut.choices[0].message.content == text[: text.index(stop)]


async def test_async_stream_as_in_the_guide(async_client: AsyncOpenAI, gateway: Gateway) -> None:
    stream = await async_client.chat.completions.create(
        model=gateway.model, messages=[{"role": "user", "content": "Hello!"}], stream=True, max_tokens=16
    )
    pieces = [chunk.choices[0].delta.content async for chunk in stream if chunk.choices[0].delta.content]
    assert "".join(pieces).strip()


async def test_async_non_streaming(async_client: AsyncOpenAI, gateway: Gateway) -> None:
    answer = await async_client.chat.completions.create(model=gateway.model, messages=PROMPT, max_tokens=4)
    assert answer.choices[0].finish_reason == "length"


def test_models_are_listed_and_retrievable(client: OpenAI, gateway: Gateway) -> None:
    ids = [model.id for model in client.models.list()]
    assert gateway.model in ids
    model = client.models.retrieve(gateway.model)
    assert model.id == gateway.model and model.object == "model"


def test_bad_key_raises_authentication_error(gateway: Gateway) -> None:
    bad = OpenAI(base_url=gateway.v1, api_key="sk-not-a-real-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as info:
        bad.chat.completions.create(model=gateway.model, messages=PROMPT, stream=True)
    assert info.value.status_code == 401
    assert info.value.code == "invalid_api_key"


@pytest.mark.parametrize("asked", ["smollm2-135m-instruc", "smollm2"])
def test_unknown_model_raises_not_found_with_a_suggestion(client: OpenAI, asked: str) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model=asked, messages=PROMPT, stream=True)
    assert info.value.code == "model_not_found"
    assert "smollm2-135m-instruct" in info.value.message
    body = info.value.body
    assert isinstance(body, dict) and body.get("did_you_mean") == "smollm2-135m-instruct"


def test_bad_parameter_raises_bad_request_naming_the_field(client: OpenAI, gateway: Gateway) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=gateway.model, messages=PROMPT, temperature=5)
    assert info.value.param == "temperature"


def test_stream_options_without_stream_is_rejected(client: OpenAI, gateway: Gateway) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model=gateway.model, messages=PROMPT, stream_options={"include_usage": True}
        )
    assert info.value.param == "stream_options"


def test_the_local_model_calls_a_tool_it_must_call(client: OpenAI, gateway: Gateway) -> None:
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    answer = client.chat.completions.create(
        model=gateway.model, messages=PROMPT, tools=[tool], tool_choice="required", seed=1, max_tokens=60  # type: ignore[list-item]
    )
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.tool_calls
    assert choice.message.tool_calls[0].function.name == "f"  # more: tests/providers/test_local_tools.py


def test_frequency_and_presence_penalties_change_the_local_answer(client: OpenAI, gateway: Gateway) -> None:
    def run(**penalties: float) -> str:
        answer = client.chat.completions.create(
            model=gateway.model, messages=PROMPT, max_tokens=40, temperature=0, **penalties
        )
        return answer.choices[0].message.content or ""

    plain = run()
    assert run(frequency_penalty=2.0) != plain
    assert run(presence_penalty=2.0) != plain


def test_an_alias_is_served_by_its_model_and_listed(client: OpenAI, gateway: Gateway) -> None:
    answer = client.chat.completions.create(model="gpt-4o", messages=PROMPT, max_tokens=3)
    assert answer.model == gateway.model  # the answer names the model that wrote it
    assert answer.choices[0].finish_reason == "length"
    assert "gpt-4o" in [model.id for model in client.models.list()]
    assert client.models.retrieve("gpt-4o").id == "gpt-4o"
