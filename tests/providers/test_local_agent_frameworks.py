"""The OpenAI Agents SDK and pydantic-ai on the embedded model, live, with nested pydantic
models as tool arguments and output types: their schemas (`$defs` and `$ref`s, strict mode)
once failed with 400 `Error resolving ref`; now the grammar holds them and the frameworks
parse what the model wrote into their models."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from agents import (
    Agent,
    ModelSettings,
    OpenAIChatCompletionsModel,
    OpenAIResponsesModel,
    Runner,
    function_tool,
    set_tracing_disabled,
)
from openai import AsyncOpenAI
from pydantic import BaseModel, Field
from pydantic_ai import Agent as PydanticAgent
from pydantic_ai import RunContext, Tool
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider
from pydantic_ai.settings import ModelSettings as PydanticSettings
from pydantic_ai.tools import ToolDefinition

from tests.support.server import Gateway


class Location(BaseModel):
    city: str = Field(max_length=20)
    country: str = Field(max_length=20)


class Forecast(BaseModel):
    where: Location
    summary: str = Field(max_length=24)


CALLS: list[Location] = []


def forecast_for(where: Location) -> str:
    """The weather forecast for a place."""
    CALLS.append(where)
    return f"Sunny and 24 degrees in {where.city}."


@pytest.fixture(autouse=True)
def fresh_calls() -> Iterator[None]:
    set_tracing_disabled(True)  # no traces sent anywhere (the test machine is offline)
    CALLS.clear()
    yield


@pytest.mark.parametrize("wire", ["responses", "chat"])
async def test_the_agents_sdk_calls_a_nested_tool_and_returns_a_nested_output(gateway: Gateway, wire: str) -> None:
    client = AsyncOpenAI(base_url=gateway.v1, api_key=gateway.api_key, max_retries=0)
    model: Any = (
        OpenAIResponsesModel(model=gateway.model, openai_client=client)
        if wire == "responses"
        else OpenAIChatCompletionsModel(model=gateway.model, openai_client=client)
    )
    agent = Agent(
        name="weather",
        instructions="Look up the forecast with the tool, then answer with the place and a short summary.",
        model=model,
        tools=[function_tool(forecast_for)],
        output_type=Forecast,
        model_settings=ModelSettings(tool_choice="required", temperature=0, max_tokens=80),
    )
    result = await Runner.run(agent, "What is the weather in Paris, France?", max_turns=4)
    assert CALLS and all(isinstance(call, Location) for call in CALLS)  # the nested argument was parsed
    assert isinstance(result.final_output, Forecast) and isinstance(result.final_output.where, Location)


async def test_pydantic_ai_calls_a_nested_tool_and_returns_a_nested_output(gateway: Gateway) -> None:
    model = OpenAIChatModel(gateway.model, provider=OpenAIProvider(base_url=gateway.v1, api_key=gateway.api_key))


    async def once(ctx: RunContext[None], tool: ToolDefinition) -> ToolDefinition | None:
        """Offered until called once: then only the output tool is left (a 135M model, held
        to call some tool, would otherwise call this one for ever)."""
        return None if CALLS else tool

    agent = PydanticAgent(
        model,
        output_type=Forecast,
        tools=[Tool(forecast_for, prepare=once)],
        instructions="Look up the forecast with the tool, then give the final result.",
        retries=3,
    )
    result = await agent.run(
        "What is the weather in Paris, France?", model_settings=PydanticSettings(temperature=0, max_tokens=80)
    )
    assert isinstance(result.output, Forecast) and isinstance(result.output.where, Location)
    assert all(isinstance(call, Location) for call in CALLS)
