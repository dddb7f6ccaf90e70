"""The Gemini door on a Gemini upstream (the body passed through as sent, recorded streams
replayed), and what every upstream shares behind it: errors in Google's shape, a key's model
list, the ledger, the response cache."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from google import genai
from google.genai import errors, types

from tests.api.gemini_door.names import (
    GEMINI_MODEL,
    OPENAI_MODEL,
    UPSTREAM_GEMINI,
    WEATHER,
)
from tests.support.gemini_upstream import GeminiUpstream, events_reply, recording_lines, text_event
from tests.support.openai_upstream import OpenAIUpstream, Reply, sse
from tests.support.server import LOCAL_MODEL, Gateway, cli


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
