"""Google's `google-genai` SDK -> the Gemini door (`/v1beta/models/{model}:...`) -> every kind of
model entry: the embedded model, an OpenAI-compatible upstream (translated both ways, tool round
trip included) and a Gemini upstream (the client's body passed through as sent). Recorded
Gemini streams are replayed through the Gemini upstream to the door."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from google import genai
from google.genai import errors, types

from tests.support.anthropic_upstream import AnthropicUpstream
from tests.support.gemini_upstream import GeminiUpstream, events_reply, recording_lines, text_event
from tests.support.openai_upstream import OpenAIUpstream, Reply, chunk, sse
from tests.support.server import LOCAL_MODEL, Gateway, cli, start_gateway

OPENAI_MODEL = "gpt-door"
GEMINI_MODEL = "gemini-door"
CLAUDE_MODEL = "claude-door"
EMBEDDED = "all-minilm-l6-v2"
UPSTREAM_GEMINI = "gemini-2.5-flash"
WEATHER = types.FunctionDeclaration(
    name="get_weather",
    description="The weather in a city",
    parameters=types.Schema(
        type=types.Type.OBJECT,
        properties={"city": types.Schema(type=types.Type.STRING)},
        required=["city"],
    ),
)


@pytest.fixture(scope="module")
def door(
    tmp_path_factory: pytest.TempPathFactory,
    upstream: OpenAIUpstream,
    gemini_upstream: GeminiUpstream,
    anthropic_upstream: AnthropicUpstream,
) -> Iterator[Gateway]:
    config = {
        "models": [
            {"name": LOCAL_MODEL, "provider": "local", "queue_size": 4},
            {"name": EMBEDDED, "provider": "embedded"},
            {
                "name": OPENAI_MODEL,
                "provider": "openai",
                "base_url": upstream.base_url,
                "api_key": "upstream-secret",
                "upstream_model": "gpt-4o-mini",
            },
            {
                "name": GEMINI_MODEL,
                "provider": "gemini",
                "base_url": gemini_upstream.base_url,
                "api_key": "google-secret",
                "upstream_model": UPSTREAM_GEMINI,
            },
            {
                "name": CLAUDE_MODEL,
                "provider": "anthropic",
                "base_url": anthropic_upstream.base_url,
                "api_key": "sk-ant-upstream",
                "upstream_model": "claude-sonnet-4-5",
            },
        ]
    }
    server = start_gateway(tmp_path_factory.mktemp("gemini-door"), config)
    yield server
    server.stop()


@pytest.fixture
def client(door: Gateway) -> genai.Client:
    return genai.Client(
        api_key=door.api_key, http_options=types.HttpOptions(base_url=door.base_url, timeout=60_000)
    )


@pytest.fixture
def openai_upstream(upstream: OpenAIUpstream) -> OpenAIUpstream:
    upstream.reset()
    return upstream


@pytest.fixture
def gemini(gemini_upstream: GeminiUpstream) -> GeminiUpstream:
    gemini_upstream.reset()
    return gemini_upstream


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


def test_gemini_upstream_gets_the_body_as_sent(client: genai.Client, gemini: GeminiUpstream) -> None:
    config = types.GenerateContentConfig(
        system_instruction="Be kind.",
        top_k=3,
        candidate_count=1,
        safety_settings=[
            types.SafetySetting(
                category=types.HarmCategory.HARM_CATEGORY_HARASSMENT,
                threshold=types.HarmBlockThreshold.BLOCK_NONE,
            )
        ],
    )
    answer = client.models.generate_content(model=GEMINI_MODEL, contents="native words here", config=config)
    assert answer.text == "native words here"
    received = gemini.requests[-1]
    assert (received.method, received.model) == ("generateContent", f"models/{UPSTREAM_GEMINI}")
    assert received.headers["x-goog-api-key"] == "google-secret"  # the gateway's key, not the client's
    assert received.body["generationConfig"]["topK"] == 3  # a field the canonical request has no place for
    assert received.body["safetySettings"] == [
        {"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}
    ]
    assert received.body["systemInstruction"]["parts"] == [{"text": "Be kind."}]


def test_gemini_upstream_tool_call_keeps_its_thought_signature(
    client: genai.Client, gemini: GeminiUpstream
) -> None:
    call_event = {
        "candidates": [
            {
                "content": {
                    "parts": [
                        {
                            "functionCall": {"name": "get_weather", "args": {"city": "Oslo"}},
                            "thoughtSignature": "c2ln",
                        }
                    ],
                    "role": "model",
                },
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 4, "totalTokenCount": 13},
    }
    gemini.enqueue(events_reply(call_event))
    config = types.GenerateContentConfig(tools=[types.Tool(function_declarations=[WEATHER])])
    chunks = list(
        client.models.generate_content_stream(model=GEMINI_MODEL, contents="Weather in Oslo?", config=config)
    )
    parts = [
        part
        for c in chunks
        for cand in c.candidates or []
        for part in (cand.content and cand.content.parts) or []
    ]
    calls = [part for part in parts if part.function_call]
    assert len(calls) == 1 and calls[0].function_call and calls[0].function_call.args == {"city": "Oslo"}
    assert calls[0].thought_signature == b"sig"
    model_turn = types.Content(role="model", parts=[calls[0]])
    result = types.Part.from_function_response(name="get_weather", response={"temp": 3})
    contents = [
        types.Content(role="user", parts=[types.Part(text="Weather in Oslo?")]),
        model_turn,
        types.Content(role="user", parts=[result]),
    ]
    usage = {"promptTokenCount": 20, "candidatesTokenCount": 2, "totalTokenCount": 22}
    gemini.enqueue(Reply(body=orjson.dumps(text_event("Cold.", "STOP", usage))))
    answer = client.models.generate_content(model=GEMINI_MODEL, contents=contents, config=config)
    assert answer.text == "Cold."
    sent = gemini.requests[-1].body["contents"]
    assert sent[1]["parts"][0]["thoughtSignature"] == "c2ln"
    assert sent[2]["parts"][0]["functionResponse"] == {"name": "get_weather", "response": {"temp": 3}}


def test_gemini_upstream_counts_and_embeds(client: genai.Client, gemini: GeminiUpstream) -> None:
    gemini.enqueue(Reply(body=orjson.dumps({"totalTokens": 42})))
    counted = client.models.count_tokens(model=GEMINI_MODEL, contents="three words here")
    assert counted.total_tokens == 42  # Gemini's own count
    sent = gemini.requests[-1]
    assert sent.method == "countTokens"
    assert sent.body["generateContentRequest"]["contents"] == [
        {"parts": [{"text": "three words here"}], "role": "user"}
    ]
    result = client.models.embed_content(
        model=GEMINI_MODEL, contents="embed me", config=types.EmbedContentConfig(output_dimensionality=4)
    )
    assert result.embeddings and len(result.embeddings[0].values or []) == 4


BLOCKED = {
    "promptFeedback": {
        "blockReason": "SAFETY",
        "safetyRatings": [
            {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True},
            {"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"},
        ],
    },
    "usageMetadata": {"promptTokenCount": 8, "totalTokenCount": 8},
}


@pytest.mark.parametrize("stream", [False, True])
def test_a_blocked_prompt_is_answered_as_gemini_does(
    client: genai.Client, gemini: GeminiUpstream, stream: bool
) -> None:
    if stream:
        gemini.enqueue(events_reply(BLOCKED))
        chunks = list(client.models.generate_content_stream(model=GEMINI_MODEL, contents="something bad"))
        assert len(chunks) == 1
        answer = chunks[0]
    else:
        gemini.enqueue(Reply(body=orjson.dumps(BLOCKED)))
        answer = client.models.generate_content(model=GEMINI_MODEL, contents="something bad")
    assert not answer.candidates and answer.text is None
    feedback = answer.prompt_feedback
    assert feedback and feedback.block_reason == types.BlockedReason.SAFETY
    assert feedback.safety_ratings and feedback.safety_ratings[0].blocked is True
    assert feedback.safety_ratings[0].category == types.HarmCategory.HARM_CATEGORY_DANGEROUS_CONTENT


GOOGLE_RECORDINGS = ["google-text", "google-tool-call", "google-reasoning", "google-tool-call-gemini3"]


@pytest.mark.parametrize("name", GOOGLE_RECORDINGS)
def test_recorded_gemini_streams_replay_to_the_door(
    client: genai.Client, gemini: GeminiUpstream, shared_fixtures: Path, name: str
) -> None:
    path = shared_fixtures / "vercel-ai" / f"{name}.chunks.txt"
    recorded = [orjson.loads(line) for line in recording_lines(path)]
    gemini.enqueue(events_reply(*recorded))
    chunks = list(client.models.generate_content_stream(model=GEMINI_MODEL, contents="replay"))
    expected_text = _parts_text(recorded, thought=False)
    got = [
        part
        for c in chunks
        for cand in c.candidates or []
        for part in (cand.content and cand.content.parts) or []
    ]
    assert "".join(p.text or "" for p in got if not p.thought) == expected_text
    assert "".join(p.text or "" for p in got if p.thought) == _parts_text(recorded, thought=True)
    expected_calls = [
        part["functionCall"]
        for event in recorded
        for cand in event.get("candidates", [])
        for part in cand.get("content", {}).get("parts", [])
        if "functionCall" in part
    ]
    assert [(p.function_call.name, p.function_call.args) for p in got if p.function_call] == [
        (call["name"], call.get("args", {})) for call in expected_calls
    ]
    last = chunks[-1]
    assert last.candidates and last.candidates[0].finish_reason == types.FinishReason.STOP
    usage = recorded[-1]["usageMetadata"]
    assert last.usage_metadata and last.usage_metadata.prompt_token_count == usage["promptTokenCount"]
    assert last.usage_metadata.total_token_count == usage["totalTokenCount"]


def _parts_text(recorded: list[dict[str, Any]], thought: bool) -> str:
    return "".join(
        part.get("text", "")
        for event in recorded
        for cand in event.get("candidates", [])
        for part in cand.get("content", {}).get("parts", [])
        if bool(part.get("thought")) == thought
    )


# -- the wire: a JSON array stream, keys, errors --------------------------------------------------


def test_stream_without_alt_sse_is_a_json_array(door: Gateway, openai_upstream: OpenAIUpstream) -> None:
    answer = httpx.post(
        f"{door.base_url}/v1beta/models/{OPENAI_MODEL}:streamGenerateContent?key={door.api_key}",
        json={"contents": [{"role": "user", "parts": [{"text": "array of words"}]}]},
    )
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/json")
    elements = answer.json()
    assert (
        "".join(p.get("text", "") for e in elements for p in e["candidates"][0]["content"]["parts"])
        == "array of words"
    )
    assert elements[-1]["candidates"][0]["finishReason"] == "STOP"
    assert elements[-1]["usageMetadata"]["promptTokenCount"] == 5


def test_errors_in_googles_shape(door: Gateway) -> None:
    bad_key = genai.Client(api_key="sk-wrong", http_options=types.HttpOptions(base_url=door.base_url))
    with pytest.raises(errors.ClientError) as caught:
        bad_key.models.generate_content(model=OPENAI_MODEL, contents="hi")
    assert caught.value.code == 401 and caught.value.status == "UNAUTHENTICATED"
    url = f"{door.base_url}/v1beta/models"
    headers = {"x-goog-api-key": door.api_key}
    missing = httpx.post(
        f"{url}/no-such-model:generateContent",
        headers=headers,
        json={"contents": [{"parts": [{"text": "x"}]}]},
    )
    assert missing.status_code == 404 and missing.json()["error"]["status"] == "NOT_FOUND"
    assert missing.json()["error"]["code"] == 404
    hi = b'"contents": [{"parts": [{"text": "hi"}]}]'
    declared = hi + b', "tools": [{"functionDeclarations": [{"name": "f"}]}]'
    for body in (
        b"{not json",
        b'{"contents": []}',
        b'{"contents": [{"parts": "x"}]}',
        b"{" + hi + b', "tools": [{"functionDeclarations": 1}]}',
        b"{" + declared + b', "toolConfig": {"functionCallingConfig": {"mode": ["ANY"]}}}',
        b"{"
        + declared
        + b', "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["g"]}}}',
        b"{" + hi + b', "generationConfig": {"temperature": "hot"}}',
    ):
        bad = httpx.post(f"{url}/{OPENAI_MODEL}:generateContent", headers=headers, content=body)
        assert bad.status_code == 400, body
        assert bad.json()["error"]["status"] == "INVALID_ARGUMENT"
    unknown = httpx.post(f"{url}/{OPENAI_MODEL}:frobnicate", headers=headers, json={})
    assert unknown.status_code == 404 and unknown.json()["error"]["status"] == "NOT_FOUND"
    orphan = {
        "contents": [
            {"role": "user", "parts": [{"functionResponse": {"name": "never_called", "response": {}}}]},
        ]
    }
    refused = httpx.post(f"{url}/{OPENAI_MODEL}:generateContent", headers=headers, json=orphan)
    assert refused.status_code == 400 and "never_called" in refused.json()["error"]["message"]


def test_upstream_failure_mid_answer_is_a_gemini_error(
    door: Gateway, openai_upstream: OpenAIUpstream
) -> None:
    openai_upstream.enqueue(
        Reply(status=429, body=orjson.dumps({"error": {"message": "slow down", "type": "rate_limit"}}))
    )
    answer = httpx.post(
        f"{door.base_url}/v1beta/models/{OPENAI_MODEL}:generateContent",
        headers={"x-goog-api-key": door.api_key},
        json={"contents": [{"parts": [{"text": "hi"}]}]},
    )
    error = answer.json()["error"]
    assert set(error) >= {"code", "message", "status"}
    assert error["code"] == answer.status_code
    _ = sse  # the OpenAI wire helpers are shared with other tests


# -- governance: a key's model list, the ledger ---------------------------------------------------


def test_a_keys_model_list_applies_and_the_ledger_records_the_door(
    door: Gateway, openai_upstream: OpenAIUpstream
) -> None:
    out = cli("keys", "create", "--name", "gemini-only", "--models", OPENAI_MODEL, data_dir=door.data_dir)
    limited = genai.Client(
        api_key=out.strip().splitlines()[-1], http_options=types.HttpOptions(base_url=door.base_url)
    )
    assert [model.name for model in limited.models.list()] == [f"models/{OPENAI_MODEL}"]
    with pytest.raises(errors.ClientError) as caught:
        limited.models.generate_content(model=LOCAL_MODEL, contents="hi")
    assert caught.value.code in (403, 404) and caught.value.status in ("PERMISSION_DENIED", "NOT_FOUND")
    answer = limited.models.generate_content(model=OPENAI_MODEL, contents="ledger me please")
    request_id = answer.sdk_http_response and (answer.sdk_http_response.headers or {}).get("x-request-id")
    assert request_id
    row = None
    for _ in range(100):  # the ledger is written after the answer
        with sqlite3.connect(door.data_dir / "sluicegate.db") as database:
            row = database.execute(
                "SELECT door, model, status, prompt_tokens, completion_tokens FROM ledger WHERE request_id = ?",
                (request_id,),
            ).fetchone()
        if row is not None:
            break
        time.sleep(0.05)
    assert row == ("gemini", OPENAI_MODEL, 200, 5, 3)
    metrics = httpx.get(f"{door.base_url}/metrics").text.splitlines()
    counted = [
        line
        for line in metrics
        if line.startswith("sluicegate_requests_total{")
        and 'door="gemini"' in line
        and 'status="200"' in line
    ]
    assert any(f'model="{OPENAI_MODEL}"' in line for line in counted)


def test_a_cached_answer_is_replayed_in_geminis_format(
    client: genai.Client, openai_upstream: OpenAIUpstream
) -> None:
    config = types.GenerateContentConfig(
        temperature=0, http_options=types.HttpOptions(headers={"x-sluicegate-cache": "on"})
    )
    first = client.models.generate_content(model=OPENAI_MODEL, contents="cache these words", config=config)
    streamed = list(
        client.models.generate_content_stream(model=OPENAI_MODEL, contents="cache these words", config=config)
    )
    again = client.models.generate_content(model=OPENAI_MODEL, contents="cache these words", config=config)
    assert len(openai_upstream.requests) == 1  # the stream and the second answer came from the cache
    headers = [r.sdk_http_response.headers or {} for r in (first, again) if r.sdk_http_response]
    assert [h.get("x-sluicegate-cache") for h in headers] == ["miss", "hit"]
    assert again.text == first.text == "".join(c.text or "" for c in streamed) == "cache these words"
    assert again.usage_metadata and again.usage_metadata.prompt_token_count == 5
