"""Function calling on the embedded model, through the official SDKs of each door: the calls
arrive in each wire format, held to the tools' schemas, and end the turn as tool calls."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import jsonschema
import openai
import pytest
from openai import OpenAI

from tests.support.server import Gateway

ASK = [{"role": "user", "content": "What is the weather in Paris?"}]
WEATHER: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
            "required": ["city", "unit"],
        },
    },
}
TIME: Any = {"type": "function", "function": {"name": "get_time", "description": "The time now"}}


@pytest.fixture
def client(gateway: Gateway) -> OpenAI:
    return OpenAI(base_url=gateway.v1, api_key=gateway.api_key, max_retries=0)


def weather_arguments(text: str) -> dict[str, Any]:
    """Arguments as the schema allows them: both required fields, the unit from its enum."""
    arguments = json.loads(text)
    assert set(arguments) == {"city", "unit"} and isinstance(arguments["city"], str)
    assert arguments["unit"] in ("celsius", "fahrenheit")
    return dict(arguments)


def test_a_required_call_streams_as_openai_chunks_and_ends_the_turn(client: OpenAI, gateway: Gateway) -> None:
    chunks = list(
        client.chat.completions.create(
            model=gateway.model, messages=ASK, tools=[WEATHER, TIME], tool_choice="required", seed=1,  # type: ignore[arg-type]
            max_tokens=120, stream=True, stream_options={"include_usage": True},
        )
    )  # fmt: skip
    opening = chunks[0].choices[0].delta  # `content: null`, as OpenAI's before calls (not "")
    assert opening.role == "assistant" and opening.content is None
    calls = [call for c in chunks if c.choices for call in c.choices[0].delta.tool_calls or []]
    assert calls and calls[0].index == 0 and calls[0].id and calls[0].id.startswith("call_")
    assert calls[0].type == "function" and calls[0].function is not None
    assert calls[0].function.name in ("get_weather", "get_time")
    for call in calls:
        assert call.function is not None and call.function.name is not None
        arguments = call.function.arguments or ""
        if call.function.name == "get_weather":
            weather_arguments(arguments)
        else:
            assert json.loads(arguments) == {} or isinstance(json.loads(arguments), dict)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["tool_calls"]
    assert not any(c.choices[0].delta.content for c in chunks if c.choices)
    usage = chunks[-1].usage
    assert usage is not None and usage.completion_tokens > 0


def test_a_named_function_is_called_with_arguments_its_schema_allows(client: OpenAI, gateway: Gateway) -> None:
    for seed in (1, 2, 3):
        answer = client.chat.completions.create(
            model=gateway.model, messages=ASK, tools=[TIME, WEATHER], seed=seed, max_tokens=120,  # type: ignore[arg-type]
            tool_choice={"type": "function", "function": {"name": "get_weather"}}, parallel_tool_calls=False,
        )  # fmt: skip
        choice = answer.choices[0]
        assert choice.finish_reason == "tool_calls" and choice.message.content is None
        assert choice.message.tool_calls is not None and len(choice.message.tool_calls) == 1
        (call,) = choice.message.tool_calls
        assert call.type == "function" and call.function.name == "get_weather"
        weather_arguments(call.function.arguments)


def test_a_tool_result_goes_back_to_the_model(client: OpenAI, gateway: Gateway) -> None:
    first = client.chat.completions.create(
        model=gateway.model, messages=ASK, tools=[WEATHER], tool_choice="required", seed=1, max_tokens=120  # type: ignore[arg-type]
    )
    called = first.choices[0].message
    assert called.tool_calls
    history: Any = [*ASK, called.model_dump(exclude_none=True)]
    history.append({"role": "tool", "tool_call_id": called.tool_calls[0].id, "content": "18 degrees and sunny"})
    second = client.chat.completions.create(
        model=gateway.model, messages=history, tools=[WEATHER], tool_choice="none", seed=1, max_tokens=30
    )
    assert second.choices[0].finish_reason in ("stop", "length") and second.choices[0].message.content
    alone = client.chat.completions.create(
        model=gateway.model, messages=ASK, tools=[WEATHER], tool_choice="none", max_tokens=1  # type: ignore[arg-type]
    )
    assert second.usage is not None and alone.usage is not None
    assert second.usage.prompt_tokens > alone.usage.prompt_tokens + 10  # the call and its result were read


def test_under_auto_the_model_chooses_and_its_calls_end_the_turn(client: OpenAI, gateway: Gateway) -> None:
    for seed in range(4):
        answer = client.chat.completions.create(
            model=gateway.model, messages=ASK, tools=[WEATHER], seed=seed, max_tokens=60  # type: ignore[arg-type]
        )
        choice = answer.choices[0]
        assert "<tool_call>" not in (choice.message.content or "")  # the call's markup never leaks
        if choice.message.tool_calls:
            assert choice.finish_reason == "tool_calls"
            weather_arguments(choice.message.tool_calls[0].function.arguments)
        else:
            assert choice.finish_reason in ("stop", "length") and choice.message.content


PLAIN_WEATHER: Any = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
}
CALL_TEXT = '<tool_call>[{"name": "get_weather", "arguments": {"city": "Oslo"}}]</tool_call>'


def test_under_auto_an_answer_that_opens_a_call_becomes_one(client: OpenAI, gateway: Gateway) -> None:
    """Greedy (temperature 0), the model repeats the call it is shown: the answer opens
    `<tool_call>`, which the client never sees, and goes on as a call under the grammar."""
    answer = client.chat.completions.create(
        model=gateway.model, tools=[PLAIN_WEATHER], temperature=0, max_tokens=60,
        messages=[{"role": "user", "content": f"Repeat exactly this text: {CALL_TEXT}"}],
    )  # fmt: skip
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    assert choice.message.tool_calls is not None
    assert choice.message.tool_calls[0].function.name == "get_weather"
    assert isinstance(json.loads(choice.message.tool_calls[0].function.arguments)["city"], str)


def test_text_before_a_call_is_kept_and_streams_first(client: OpenAI, gateway: Gateway) -> None:
    chunks = list(
        client.chat.completions.create(
            model=gateway.model, tools=[PLAIN_WEATHER], temperature=0, max_tokens=60, stream=True, logprobs=True,
            messages=[{"role": "user", "content": f'Repeat exactly: "Let me check.\n{CALL_TEXT}"'}],
        )
    )  # fmt: skip
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    text = "".join(d.content or "" for d in deltas)
    logprobs = [entry for c in chunks if c.choices and c.choices[0].logprobs for entry in c.choices[0].logprobs.content or []]
    assert "".join(entry.token for entry in logprobs) == text  # the text's tokens, not the markup's
    first_call = next(i for i, d in enumerate(deltas) if d.tool_calls)
    assert text.strip() and "<tool" not in text
    assert not any(d.content for d in deltas[first_call:])  # the text came first
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]


def test_a_forced_call_cut_by_max_tokens_is_kept_as_written_at_every_door(client: OpenAI, gateway: Gateway) -> None:
    """The call is never lost: `length` with the call as far as it was written (the chat
    door's partial call, the Messages door's tool_use block, the Responses door's item)."""
    answer = client.chat.completions.create(
        model=gateway.model, messages=ASK, tools=[WEATHER], tool_choice="required", max_tokens=3  # type: ignore[arg-type]
    )
    choice = answer.choices[0]
    assert choice.finish_reason == "length" and choice.message.tool_calls
    assert choice.message.tool_calls[0].function.name == "get_weather"
    assert answer.usage is not None and answer.usage.completion_tokens == 3
    streamed = list(
        client.chat.completions.create(
            model=gateway.model, messages=ASK, tools=[WEATHER], tool_choice="required", max_tokens=12, stream=True,  # type: ignore[arg-type]
        )
    )  # fmt: skip
    calls = [call for c in streamed if c.choices for call in c.choices[0].delta.tool_calls or []]
    assert calls and calls[0].function is not None and calls[0].function.name == "get_weather"
    assert [c.choices[0].finish_reason for c in streamed if c.choices and c.choices[0].finish_reason] == ["length"]
    messages = anthropic.Anthropic(base_url=gateway.base_url, api_key=gateway.api_key, max_retries=0)
    tool: Any = {"name": "get_weather", "input_schema": WEATHER["function"]["parameters"]}
    message = messages.messages.create(
        model=gateway.model, max_tokens=5, tools=[tool], tool_choice={"type": "any"}, messages=ASK,  # type: ignore[arg-type]
    )  # fmt: skip
    assert message.stop_reason == "max_tokens" and message.content and message.content[0].type == "tool_use"
    response = client.responses.create(
        model=gateway.model, input="Weather in Hue?", max_output_tokens=5, tool_choice="required",
        tools=[{"type": "function", "name": "get_weather", "parameters": WEATHER["function"]["parameters"]}],  # type: ignore[list-item]
    )  # fmt: skip
    assert response.status == "incomplete" and response.output and response.output[0].type == "function_call"


def test_a_choice_of_a_tool_not_given_is_a_400(client: OpenAI, gateway: Gateway) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model=gateway.model, messages=ASK, tools=[WEATHER],  # type: ignore[arg-type]
            tool_choice={"type": "function", "function": {"name": "get_time"}},
        )  # fmt: skip
    assert isinstance(info.value.body, dict) and info.value.body["param"] == "tool_choice"


def test_schemas_the_old_converter_refused_are_honoured(client: OpenAI, gateway: Gateway) -> None:
    """An unanchored pattern, a property with no type, and `$ref`s into the tool's own
    `$defs` (a nested pydantic model): each once a 400, now held by the grammar."""
    parameters: Any = {
        "$defs": {"Place": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 20}},
                            "required": ["city"], "additionalProperties": False}},
        "type": "object",
        "properties": {"where": {"$ref": "#/$defs/Place"}, "code": {"type": "string", "pattern": "[A-Z]{3}"},
                       "note": {"description": "anything"}},
        "required": ["where", "code", "note"],
        "additionalProperties": False,
    }  # fmt: skip
    for seed in range(3):
        answer = client.chat.completions.create(
            model=gateway.model, messages=ASK, tool_choice="required", seed=seed, max_tokens=80,
            tools=[{"type": "function", "function": {"name": "f", "parameters": parameters}}],
        )  # fmt: skip
        choice = answer.choices[0]
        assert choice.message.tool_calls, choice
        if choice.finish_reason == "tool_calls":
            jsonschema.validate(json.loads(choice.message.tool_calls[0].function.arguments), parameters)
        else:
            assert choice.finish_reason == "length"


def test_anthropic_clients_get_tool_use_blocks(gateway: Gateway) -> None:
    client = anthropic.Anthropic(base_url=gateway.base_url, api_key=gateway.api_key, max_retries=0)
    tool: Any = {"name": "get_weather", "description": WEATHER["function"]["description"],
                 "input_schema": WEATHER["function"]["parameters"]}  # fmt: skip
    message = client.messages.create(  # temperature 0: greedy, the same answer every run
        model=gateway.model, max_tokens=120, tools=[tool], tool_choice={"type": "any"}, messages=ASK,  # type: ignore[arg-type]
        extra_body={"temperature": 0},
    )
    assert message.stop_reason == "tool_use"
    block = message.content[0]
    assert block.type == "tool_use" and block.name == "get_weather" and block.id
    weather_arguments(json.dumps(block.input))
    with client.messages.stream(
        model=gateway.model, max_tokens=120, tools=[tool], tool_choice={"type": "tool", "name": "get_weather"},  # type: ignore[arg-type]
        messages=ASK, extra_body={"temperature": 0},  # type: ignore[arg-type]
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use" and final.content[0].type == "tool_use"
    weather_arguments(json.dumps(final.content[0].input))


def test_responses_clients_get_function_call_items(client: OpenAI, gateway: Gateway) -> None:
    tool: Any = {"type": "function", "name": "get_weather", "parameters": WEATHER["function"]["parameters"]}
    response = client.responses.create(
        model=gateway.model, input="Weather in Hue?", tools=[tool], tool_choice="required", temperature=0
    )
    assert response.status == "completed"
    item = response.output[0]
    assert item.type == "function_call" and item.name == "get_weather" and item.call_id.startswith("call_")
    weather_arguments(item.arguments)
    followed = client.responses.create(
        model=gateway.model, previous_response_id=response.id, tools=[tool], tool_choice="none", max_output_tokens=20,
        input=[{"type": "function_call_output", "call_id": item.call_id, "output": "25 degrees"}],
    )  # fmt: skip
    assert followed.output_text
