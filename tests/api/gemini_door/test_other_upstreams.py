"""Google's `google-genai` SDK -> the Gemini door (`/v1beta/models/{model}:...`) -> every kind of
model entry: the embedded model, an OpenAI-compatible upstream (translated both ways, tool round
trip included) and a Gemini upstream (the client's body passed through as sent). Recorded
Gemini streams are replayed through the Gemini upstream to the door."""

from __future__ import annotations

import httpx
import orjson
import pytest
from google import genai
from google.genai import types

from tests.api.gemini_door.names import (
    CLAUDE_MODEL,
    EMBEDDED,
    GEMINI_MODEL,
    OPENAI_MODEL,
    WEATHER,
)
from tests.support.anthropic_upstream import AnthropicUpstream
from tests.support.openai_upstream import OpenAIUpstream, Reply, chunk
from tests.support.server import LOCAL_MODEL, Gateway

# -- the embedded model ---------------------------------------------------------------------------


def test_embedded_model_answers_whole_and_streamed(client: genai.Client) -> None:
    config = types.GenerateContentConfig(max_output_tokens=8, temperature=0, system_instruction="Be brief.")
    whole = client.models.generate_content(model=LOCAL_MODEL, contents="Say hello.", config=config)
    assert whole.text
    assert whole.candidates and whole.candidates[0].finish_reason in (
        types.FinishReason.STOP,
        types.FinishReason.MAX_TOKENS,
    )
    assert whole.usage_metadata and whole.usage_metadata.prompt_token_count
    assert whole.usage_metadata.candidates_token_count
    chunks = list(
        client.models.generate_content_stream(model=LOCAL_MODEL, contents="Say hello.", config=config)
    )
    assert "".join(c.text or "" for c in chunks) == whole.text  # temperature 0: the same answer
    assert (
        chunks[-1].candidates and chunks[-1].candidates[0].finish_reason == whole.candidates[0].finish_reason
    )
    assert chunks[-1].usage_metadata and chunks[-1].usage_metadata.total_token_count


def test_embedded_model_counts_tokens_exactly(door: Gateway, client: genai.Client) -> None:
    counted = client.models.count_tokens(model=LOCAL_MODEL, contents="How many tokens is this?")
    assert counted.total_tokens and counted.total_tokens > 3
    answer = httpx.post(
        f"{door.base_url}/v1beta/models/{LOCAL_MODEL}:countTokens",
        headers={"x-goog-api-key": door.api_key},
        json={"contents": [{"parts": [{"text": "How many tokens is this?"}]}]},
    )
    assert answer.headers["x-sluicegate-token-count"] == "exact"


def test_embedded_embeddings_model_answers_embed_content(client: genai.Client) -> None:
    single = client.models.embed_content(model=EMBEDDED, contents="A cat sits on the mat.")
    batch = client.models.embed_content(
        model=EMBEDDED, contents=["A cat sits on the mat.", "Stock prices fell."]
    )
    assert single.embeddings and batch.embeddings and len(batch.embeddings) == 2
    one, same, other = single.embeddings[0].values, batch.embeddings[0].values, batch.embeddings[1].values
    assert one and same and other and len(one) == 384
    assert max(abs(a - b) for a, b in zip(one, same, strict=True)) < 1e-4  # the same text, the same vector
    assert sum(a * b for a, b in zip(one, other, strict=True)) < 0.9  # unit vectors of different texts
    entry = client.models.get(model=EMBEDDED)
    assert entry.supported_actions == ["embedContent", "batchEmbedContents"]


def test_model_list_in_googles_shape(client: genai.Client) -> None:
    names = {model.name: model for model in client.models.list()}
    assert {f"models/{LOCAL_MODEL}", f"models/{OPENAI_MODEL}", f"models/{GEMINI_MODEL}"} <= set(names)
    one = client.models.get(model=OPENAI_MODEL)
    assert one.name == f"models/{OPENAI_MODEL}"
    assert one.supported_actions and "generateContent" in one.supported_actions


# -- an OpenAI-compatible upstream ----------------------------------------------------------------


def test_openai_upstream_gets_the_request_translated(
    client: genai.Client, openai_upstream: OpenAIUpstream
) -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
    config = types.GenerateContentConfig(
        system_instruction="You are terse.",
        temperature=0.3,
        top_p=0.9,
        max_output_tokens=50,
        stop_sequences=["END"],
        seed=7,
        response_mime_type="application/json",
        response_json_schema=schema,
    )
    answer = client.models.generate_content(model=OPENAI_MODEL, contents="echo this back", config=config)
    assert answer.text == "echo this back"
    assert answer.candidates and answer.candidates[0].finish_reason == types.FinishReason.STOP
    assert answer.usage_metadata and answer.usage_metadata.prompt_token_count == 5
    sent = openai_upstream.requests[-1]
    assert sent["messages"] == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "echo this back"},
    ]
    assert (
        sent["temperature"],
        sent["top_p"],
        sent["max_completion_tokens"],
        sent["stop"],
        sent["seed"],
    ) == (
        0.3,
        0.9,
        50,
        ["END"],
        7,
    )
    assert sent["response_format"]["type"] == "json_schema"
    assert sent["response_format"]["json_schema"]["schema"] == schema


def test_openai_upstream_streams_to_the_sdk(client: genai.Client, openai_upstream: OpenAIUpstream) -> None:
    chunks = list(client.models.generate_content_stream(model=OPENAI_MODEL, contents="one two three"))
    assert "".join(c.text or "" for c in chunks) == "one two three"
    last = chunks[-1]
    assert last.candidates and last.candidates[0].finish_reason == types.FinishReason.STOP
    assert last.usage_metadata and last.usage_metadata.candidates_token_count == 3
    assert openai_upstream.requests[-1]["stream"] is True


def _tool_call_reply(stream: bool) -> Reply:
    if not stream:
        message = {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_abc",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        }
        answer = {
            "id": "chatcmpl-upstream",
            "object": "chat.completion",
            "created": 1700000000,
            "model": "gpt-4o-mini",
            "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 6, "total_tokens": 18},
        }
        return Reply(body=orjson.dumps(answer))
    call = {
        "index": 0,
        "id": "call_abc",
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    return Reply(
        chunks=[
            chunk(role="assistant", content=None, tool_calls=[call]),
            chunk(tool_calls=[{"index": 0, "function": {"arguments": '{"city": '}}]),
            chunk(tool_calls=[{"index": 0, "function": {"arguments": '"Paris"}'}}]),
            chunk(finish="tool_calls"),
            b"data: [DONE]\n\n",
        ]
    )


@pytest.mark.parametrize("stream", [False, True])
def test_tool_round_trip_through_an_openai_upstream(
    client: genai.Client, openai_upstream: OpenAIUpstream, stream: bool
) -> None:
    config = types.GenerateContentConfig(
        tools=[types.Tool(function_declarations=[WEATHER])],
        tool_config=types.ToolConfig(
            function_calling_config=types.FunctionCallingConfig(mode=types.FunctionCallingConfigMode.ANY)
        ),
    )
    question = types.Content(role="user", parts=[types.Part(text="Weather in Paris?")])
    openai_upstream.enqueue(_tool_call_reply(stream))
    if stream:
        chunks = list(
            client.models.generate_content_stream(model=OPENAI_MODEL, contents=[question], config=config)
        )
        calls = [call for c in chunks for call in c.function_calls or []]
    else:
        answer = client.models.generate_content(model=OPENAI_MODEL, contents=[question], config=config)
        calls = answer.function_calls or []
    assert [(call.name, call.args) for call in calls] == [("get_weather", {"city": "Paris"})]
    sent = openai_upstream.requests[-1]
    assert sent["tools"][0]["function"]["name"] == "get_weather"
    assert sent["tools"][0]["function"]["parameters"]["properties"]["city"]["type"] == "string"
    assert sent["tool_choice"] == "required"

    model_turn = types.Content(role="model", parts=[types.Part(function_call=calls[0])])
    result = types.Part.from_function_response(name="get_weather", response={"forecast": "sunny"})
    followup = [question, model_turn, types.Content(role="user", parts=[result])]
    answer = client.models.generate_content(model=OPENAI_MODEL, contents=followup, config=config)
    assert answer.text == '{"forecast":"sunny"}'  # the upstream echoes the last message: the tool's result
    sent = openai_upstream.requests[-1]
    assistant, tool = sent["messages"][-2:]
    assert assistant["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": '{"city":"Paris"}'}
    assert tool == {
        "role": "tool",
        "tool_call_id": assistant["tool_calls"][0]["id"],
        "content": '{"forecast":"sunny"}',
    }


def test_embeddings_through_an_openai_upstream(client: genai.Client, openai_upstream: OpenAIUpstream) -> None:
    result = client.models.embed_content(model=OPENAI_MODEL, contents=["first text", "second text"])
    assert result.embeddings and len(result.embeddings) == 2
    assert all(e.values for e in result.embeddings)
    assert openai_upstream.requests[-1]["input"] == ["first text", "second text"]


# -- an Anthropic upstream -----------------------------------------------------------------------


def test_anthropic_upstream_answers_whole_streamed_and_counts(
    client: genai.Client, anthropic_upstream: AnthropicUpstream
) -> None:
    anthropic_upstream.reset()
    config = types.GenerateContentConfig(system_instruction="Be brief.", max_output_tokens=40)
    answer = client.models.generate_content(model=CLAUDE_MODEL, contents="claude says this", config=config)
    assert answer.text == "claude says this"
    assert answer.candidates and answer.candidates[0].finish_reason == types.FinishReason.STOP
    sent = anthropic_upstream.requests[-1]
    assert (sent["system"], sent["max_tokens"], sent["messages"]) == (
        "Be brief.",
        40,
        [{"role": "user", "content": [{"type": "text", "text": "claude says this"}]}],
    )
    chunks = list(client.models.generate_content_stream(model=CLAUDE_MODEL, contents="streamed from claude"))
    assert "".join(c.text or "" for c in chunks) == "streamed from claude"
    assert chunks[-1].usage_metadata and chunks[-1].usage_metadata.candidates_token_count == 3
    counted = client.models.count_tokens(model=CLAUDE_MODEL, contents="count these words")
    assert counted.total_tokens and anthropic_upstream.paths[-1] == "/v1/messages/count_tokens"


# -- a Gemini upstream ----------------------------------------------------------------------------
