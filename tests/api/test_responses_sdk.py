"""The official OpenAI SDK's Responses API against a live gateway: the embedded model, and the
local OpenAI-wire upstream for what the embedded model cannot do (tool calls) or where the
test must see exactly what the model was sent."""

from __future__ import annotations

from typing import Any

import openai
import pytest
from openai import AsyncOpenAI, OpenAI

from tests.conftest import UPSTREAM_MODEL
from tests.support.openai_calls import completion_body, text_reply, tool_delta, usage_chunk
from tests.support.openai_upstream import OpenAIUpstream, Reply, chunk
from tests.support.server import Gateway, cli

DONE = b"data: [DONE]\n\n"
WEATHER: Any = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}


@pytest.fixture
def client(gateway: Gateway) -> OpenAI:
    return OpenAI(base_url=gateway.v1, api_key=gateway.api_key, max_retries=0)


@pytest.fixture
def async_client(gateway: Gateway) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=gateway.v1, api_key=gateway.api_key, max_retries=0)


@pytest.fixture(scope="session")
def other_key(gateway: Gateway) -> str:
    return cli("keys", "create", "--name", "someone-else", data_dir=gateway.data_dir).strip().splitlines()[-1]


def tool_call_reply(arguments: list[str], call_id: str = "call_w1") -> Reply:
    chunks = [chunk(role="assistant", content=None)]
    chunks.append(chunk(tool_calls=[tool_delta(0, "", id=call_id, name="get_weather")]))
    chunks += [chunk(tool_calls=[tool_delta(0, piece)]) for piece in arguments]
    chunks += [chunk(finish="tool_calls"), usage_chunk(40, 9), DONE]
    return Reply(chunks=chunks)


def whole_reply(text: str) -> Reply:
    choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
    return Reply(body=completion_body([choice]))


# --- the embedded model ------------------------------------------------------------------


def test_create_returns_a_whole_response(client: OpenAI, gateway: Gateway) -> None:
    response = client.responses.create(
        model=gateway.model, input="Write a short poem about rivers.", max_output_tokens=12
    )
    assert response.object == "response" and response.id.startswith("resp_")
    assert response.model == gateway.model
    assert response.status in ("completed", "incomplete")
    assert response.output[0].type == "message" and response.output[0].role == "assistant"
    assert response.output_text.strip()
    assert response.usage is not None
    assert response.usage.input_tokens > 5 and 0 < response.usage.output_tokens <= 12
    assert response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens
    assert response.store is True and response.max_output_tokens == 12


def test_the_token_limit_makes_an_incomplete_response(client: OpenAI, gateway: Gateway) -> None:
    response = client.responses.create(model=gateway.model, input="Write a long story.", max_output_tokens=4)
    assert response.status == "incomplete"
    assert (
        response.incomplete_details is not None and response.incomplete_details.reason == "max_output_tokens"
    )
    assert response.usage is not None and response.usage.output_tokens == 4
    assert response.output[0].status == "incomplete"


def test_create_with_stream_yields_the_documented_events(client: OpenAI, gateway: Gateway) -> None:
    stream = client.responses.create(
        model=gateway.model, input="Say hello.", max_output_tokens=10, stream=True
    )
    events = list(stream)
    kinds = [event.type for event in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:-1] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
    ]
    assert kinds[-1] in ("response.completed", "response.incomplete")
    assert [event.sequence_number for event in events] == list(range(len(events)))
    deltas = "".join(event.delta for event in events if event.type == "response.output_text.delta")
    final = events[-1].response  # type: ignore[union-attr]
    assert deltas.strip() and final.output_text == deltas
    assert final.id == events[0].response.id  # type: ignore[union-attr]


def test_the_stream_helper_gives_text_events_and_the_final_response(client: OpenAI, gateway: Gateway) -> None:
    # Greedy decoding of this prompt ends well before the limit, so the stream completes.
    with client.responses.stream(
        model=gateway.model, input="Say hello.", max_output_tokens=120, temperature=0
    ) as stream:
        deltas = [event.delta for event in stream if event.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert final.status == "completed"
    assert final.output_text == "".join(deltas) and final.output_text.strip()
    assert final.usage is not None and final.usage.output_tokens < 120


def test_previous_response_id_continues_the_conversation(client: OpenAI, gateway: Gateway) -> None:
    first = client.responses.create(model=gateway.model, input="My name is Ada.", max_output_tokens=6)
    follow = client.responses.create(
        model=gateway.model, input="What is my name?", previous_response_id=first.id, max_output_tokens=6
    )
    fresh = client.responses.create(model=gateway.model, input="What is my name?", max_output_tokens=6)
    assert follow.previous_response_id == first.id
    assert first.usage is not None and follow.usage is not None and fresh.usage is not None
    # the first exchange (its input and its output) came before the new question
    assert follow.usage.input_tokens >= fresh.usage.input_tokens + first.usage.output_tokens + 3


async def test_the_async_client_streams_too(async_client: AsyncOpenAI, gateway: Gateway) -> None:
    stream = await async_client.responses.create(
        model=gateway.model, input="Hi", max_output_tokens=5, stream=True
    )
    kinds = [event.type async for event in stream]
    assert kinds[0] == "response.created" and kinds[-1] in ("response.completed", "response.incomplete")


# --- stored responses ---------------------------------------------------------------------


def test_retrieve_delete_and_input_items(client: OpenAI, clean_upstream: OpenAIUpstream) -> None:
    clean_upstream.enqueue(text_reply("Bonjour", " !"))
    created = client.responses.create(
        model=UPSTREAM_MODEL,
        input=[
            {"role": "user", "content": "Say hi in French."},
            {"role": "user", "content": "Short, please."},
        ],
        instructions="You are terse.",
        metadata={"ticket": "42"},
        stream=True,
    )
    final = [event for event in created][-1].response  # type: ignore[union-attr]
    got = client.responses.retrieve(final.id)
    assert got.model_dump() == final.model_dump()
    assert (
        got.output_text == "Bonjour !"
        and got.instructions == "You are terse."
        and got.metadata == {"ticket": "42"}
    )
    items = client.responses.input_items.list(final.id)
    assert [item.content[0].text for item in items.data] == ["Short, please.", "Say hi in French."]  # type: ignore[union-attr]
    assert all(item.id.startswith("msg_") for item in items.data)  # type: ignore[union-attr]
    ascending = client.responses.input_items.list(final.id, order="asc", limit=1)
    assert len(ascending.data) == 1 and ascending.has_more
    assert ascending.data[0].content[0].text == "Say hi in French."  # type: ignore[union-attr]
    client.responses.delete(final.id)
    with pytest.raises(openai.NotFoundError) as caught:
        client.responses.retrieve(final.id)
    assert caught.value.body["message"] == f"Response with id '{final.id}' not found."  # type: ignore[index]
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(final.id)


def test_a_response_belongs_to_the_key_that_made_it(
    client: OpenAI, gateway: Gateway, other_key: str, clean_upstream: OpenAIUpstream
) -> None:
    mine = client.responses.create(model=UPSTREAM_MODEL, input="Secret plans")
    other = OpenAI(base_url=gateway.v1, api_key=other_key, max_retries=0)
    with pytest.raises(openai.NotFoundError):
        other.responses.retrieve(mine.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.delete(mine.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.input_items.list(mine.id)
    with pytest.raises(openai.BadRequestError) as caught:
        other.responses.create(model=UPSTREAM_MODEL, input="And?", previous_response_id=mine.id)
    assert caught.value.code == "previous_response_not_found"
    assert caught.value.param == "previous_response_id"
    assert client.responses.retrieve(mine.id).id == mine.id  # still there for its owner


def test_store_false_keeps_nothing(client: OpenAI, clean_upstream: OpenAIUpstream) -> None:
    response = client.responses.create(model=UPSTREAM_MODEL, input="Forget me", store=False)
    assert response.store is False and response.output_text == "Forget me"
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)


# --- tool calls, through the OpenAI-wire upstream -------------------------------------------


def test_a_function_call_round_trip(client: OpenAI, clean_upstream: OpenAIUpstream) -> None:
    clean_upstream.enqueue(tool_call_reply(['{"city":', '"Paris"}']), whole_reply("It is 18C in Paris."))
    with client.responses.stream(model=UPSTREAM_MODEL, input="Weather in Paris?", tools=[WEATHER]) as stream:
        argument_deltas = [e.delta for e in stream if e.type == "response.function_call_arguments.delta"]
        first = stream.get_final_response()
    assert argument_deltas == ['{"city":', '"Paris"}']
    assert first.status == "completed" and first.output_text == ""
    (call,) = first.output
    assert call.type == "function_call"
    assert (call.name, call.arguments, call.call_id, call.status) == (
        "get_weather",
        '{"city":"Paris"}',
        "call_w1",
        "completed",
    )
    sent = clean_upstream.requests[-1]
    assert sent["messages"] == [{"role": "user", "content": "Weather in Paris?"}]
    assert sent["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "The weather in a city",
                "parameters": WEATHER["parameters"],
                "strict": True,
            },
        }
    ]
    assert sent["stream"] is True and sent["model"] == "gpt-4o-mini"

    second = client.responses.create(
        model=UPSTREAM_MODEL,
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": '{"temp": 18}'}],
        tools=[WEATHER],
    )
    assert second.output_text == "It is 18C in Paris." and second.previous_response_id == first.id
    assert clean_upstream.requests[-1]["messages"] == [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_w1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_w1", "content": '{"temp": 18}'},
    ]


def test_a_whole_answer_with_tool_calls(client: OpenAI, clean_upstream: OpenAIUpstream) -> None:
    message = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
            },
            {
                "id": "call_2",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
            },
        ],
    }
    clean_upstream.enqueue(
        Reply(body=completion_body([{"index": 0, "message": message, "finish_reason": "tool_calls"}]))
    )
    response = client.responses.create(
        model=UPSTREAM_MODEL,
        input="Rome and Oslo?",
        tools=[WEATHER],
        tool_choice="required",
        parallel_tool_calls=True,
    )
    assert [(item.type, item.call_id, item.arguments) for item in response.output] == [  # type: ignore[union-attr]
        ("function_call", "call_1", '{"city":"Rome"}'),
        ("function_call", "call_2", '{"city":"Oslo"}'),
    ]
    sent = clean_upstream.requests[-1]
    assert (
        sent["tool_choice"] == "required" and sent["parallel_tool_calls"] is True and sent["stream"] is False
    )
    assert (
        response.usage is not None and response.usage.input_tokens == 7 and response.usage.output_tokens == 3
    )


async def test_the_async_stream_helper(async_client: AsyncOpenAI, clean_upstream: OpenAIUpstream) -> None:
    clean_upstream.enqueue(text_reply("one", " two", " three"))
    async with async_client.responses.stream(model=UPSTREAM_MODEL, input="Count") as stream:
        deltas = [event.delta async for event in stream if event.type == "response.output_text.delta"]
        final = await stream.get_final_response()
    assert deltas == ["one", " two", " three"] and final.output_text == "one two three"


def test_structured_output_and_reasoning_effort_reach_the_upstream(
    client: OpenAI, clean_upstream: OpenAIUpstream
) -> None:
    schema = {
        "type": "object",
        "properties": {"n": {"type": "integer"}},
        "required": ["n"],
        "additionalProperties": False,
    }
    clean_upstream.enqueue(whole_reply('{"n": 3}'))
    response = client.responses.create(
        model=UPSTREAM_MODEL,
        input="Three as JSON",
        text={"format": {"type": "json_schema", "name": "number", "schema": schema, "strict": True}},
        reasoning={"effort": "low"},
        temperature=0.3,
        max_output_tokens=50,
        user="end-user-1",
    )
    assert response.output_text == '{"n": 3}'
    assert response.text is not None and response.text.format.type == "json_schema"  # type: ignore[union-attr]
    sent = clean_upstream.requests[-1]
    assert sent["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "number", "schema": schema, "strict": True},
    }
    assert (
        sent["reasoning_effort"] == "low"
        and sent["temperature"] == 0.3
        and sent["max_completion_tokens"] == 50
    )
    assert sent["user"] == "end-user-1" and "metadata" not in sent


# --- errors before the first byte -----------------------------------------------------------


def test_errors_before_the_first_byte_are_openai_errors(
    client: OpenAI, clean_upstream: OpenAIUpstream
) -> None:
    with pytest.raises(openai.NotFoundError) as not_found:
        client.responses.create(model="no-such-model", input="Hi", stream=True)
    assert not_found.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as bad:
        client.responses.create(model=UPSTREAM_MODEL, input="Hi", tools=[{"type": "local_shell"}])
    assert bad.value.param == "tools[0].type" and "built-in tools" in bad.value.message
    clean_upstream.enqueue(
        Reply(status=429, body=b'{"error": {"message": "slow down", "type": "rate_limit_error"}}')
    )
    with pytest.raises(openai.RateLimitError):
        client.responses.create(model=UPSTREAM_MODEL, input="Hi", stream=True)
    with pytest.raises(openai.BadRequestError) as unknown:
        client.responses.create(model=UPSTREAM_MODEL, input="Hi", previous_response_id="resp_nope")
    assert unknown.value.code == "previous_response_not_found"
