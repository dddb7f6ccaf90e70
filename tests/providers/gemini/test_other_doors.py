"""Gemini behind the other front doors: the `anthropic` SDK on `/v1/messages` and the `openai`
SDK's Responses API get Gemini's text, thoughts and function calls in their own formats."""

from __future__ import annotations

from typing import Any

import orjson
from anthropic import Anthropic
from openai import OpenAI

from tests.providers.gemini.conftest import GEMINI_MODEL
from tests.support.gemini_upstream import GeminiUpstream, Reply, events_reply, text_event
from tests.support.server import Gateway

USAGE = {"promptTokenCount": 7, "candidatesTokenCount": 3, "thoughtsTokenCount": 5, "totalTokenCount": 15}


def thought_then_text() -> Reply:
    thought = {
        "candidates": [{"content": {"parts": [{"text": "Counting.", "thought": True}], "role": "model"}}]
    }
    return events_reply(thought, text_event("Three "), text_event("r's.", "STOP", USAGE))


def test_the_anthropic_sdk_streams_a_gemini_answer(gemini: GeminiUpstream, gemini_gateway: Gateway) -> None:
    client = Anthropic(
        base_url=gemini_gateway.base_url, api_key=gemini_gateway.api_key, max_retries=0, timeout=15
    )
    gemini.enqueue(thought_then_text())
    with client.messages.stream(
        model=GEMINI_MODEL,
        max_tokens=200,
        system="Be brief.",
        messages=[{"role": "user", "content": "How many r's in strawberry?"}],
        thinking={"type": "enabled", "budget_tokens": 1024},
    ) as stream:
        message = stream.get_final_message()
    kinds = [block.type for block in message.content]
    assert kinds == ["thinking", "text"]
    assert message.content[0].thinking == "Counting."  # type: ignore[union-attr]
    assert message.content[1].text == "Three r's."  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens == 7 and message.usage.output_tokens == 8
    sent = gemini.requests[0].body
    assert sent["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert sent["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 1024, "includeThoughts": True}
    assert sent["generationConfig"]["maxOutputTokens"] == 200


def test_an_anthropic_tool_round_trip_reaches_gemini(gemini: GeminiUpstream, gemini_gateway: Gateway) -> None:
    client = Anthropic(
        base_url=gemini_gateway.base_url, api_key=gemini_gateway.api_key, max_retries=0, timeout=15
    )
    call = {"functionCall": {"name": "weather", "args": {"city": "Oslo"}}, "thoughtSignature": "c2ln"}
    gemini.enqueue(
        Reply(body=orjson.dumps({"candidates": [{"content": {"parts": [call]}, "finishReason": "STOP"}]}))
    )
    tools: Any = [
        {"name": "weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}
    ]
    question: Any = {"role": "user", "content": "Weather in Oslo?"}
    first = client.messages.create(model=GEMINI_MODEL, max_tokens=100, messages=[question], tools=tools)
    [use] = first.content
    assert use.type == "tool_use" and use.name == "weather" and use.input == {"city": "Oslo"}
    assert first.stop_reason == "tool_use"
    gemini.enqueue(Reply(body=orjson.dumps(text_event("Cold.", "STOP", USAGE))))
    result: Any = {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "-3 C"}],
    }
    second = client.messages.create(
        model=GEMINI_MODEL,
        max_tokens=100,
        tools=tools,
        messages=[question, {"role": "assistant", "content": first.content}, result],  # type: ignore[list-item]
    )
    assert second.content[0].text == "Cold."  # type: ignore[union-attr]
    contents = gemini.requests[1].body["contents"]
    assert contents[1]["parts"][0]["functionCall"] == {"name": "weather", "args": {"city": "Oslo"}}
    assert contents[2]["parts"] == [{"functionResponse": {"name": "weather", "response": {"output": "-3 C"}}}]


def test_the_responses_api_streams_a_gemini_answer(gemini: GeminiUpstream, gclient: OpenAI) -> None:
    gemini.enqueue(thought_then_text())
    stream = gclient.responses.create(model=GEMINI_MODEL, input="How many r's in strawberry?", stream=True)
    text = ""
    final = None
    for event in stream:
        if event.type == "response.output_text.delta":
            text += event.delta
        elif event.type == "response.completed":
            final = event.response
    assert text == "Three r's."
    assert final is not None and final.status == "completed"
    assert final.usage is not None and final.usage.output_tokens == 8
