"""The `gemini` provider through a real gateway process and the `openai` SDK: what the upstream
receives (its URL, the gateway's key, cleaned schemas, a tool round trip) and what the client
gets when Gemini blocks, fails or is cut off."""

from __future__ import annotations

import itertools
import json
from typing import Any

import httpx
import openai
import orjson
import pytest
from openai import OpenAI

from sluicegate.core.request import ChatRequest
from sluicegate.providers.gemini.config import GeminiConfig
from sluicegate.providers.gemini.contents import SKIP_SIGNATURE
from sluicegate.providers.gemini.provider import GeminiProvider
from tests.providers.gemini.conftest import GEMINI_25, GEMINI_MODEL, UPSTREAM_KEY
from tests.providers.gemini.test_schema import PYDANTIC_LIKE, assert_gemini_subset
from tests.support.gemini_upstream import (
    GeminiUpstream,
    Reply,
    error_body,
    events_reply,
    frame,
    text_event,
)
from tests.support.server import Gateway

MESSAGES: Any = [{"role": "user", "content": "Hello there"}]
USAGE = {"promptTokenCount": 4, "candidatesTokenCount": 2, "totalTokenCount": 6}
SIGNATURE = "EpAICo0IAb4+9vuku3oDHR5EQSMfPm5IpmH06lgm9aGICNAJ"


def call_event(*calls: tuple[str, dict[str, Any]], signature: str | None = SIGNATURE) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [{"functionCall": {"name": name, "args": args}} for name, args in calls]
    if signature:
        parts[0]["thoughtSignature"] = signature
    return {
        "candidates": [{"content": {"parts": parts, "role": "model"}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": USAGE,
        "responseId": "r-calls",
    }


def raw_stream(gateway: Gateway, **body: Any) -> httpx.Response:
    return httpx.post(
        gateway.v1 + "/chat/completions",
        json={"model": GEMINI_MODEL, "messages": MESSAGES, "stream": True, **body},
        headers={"Authorization": f"Bearer {gateway.api_key}"},
        timeout=15,
    )


def data_events(response: httpx.Response) -> list[Any]:
    assert response.status_code == 200, response.text
    blocks = response.content.split(b"\n\n")
    assert blocks[-2:] == [b"data: [DONE]", b""]
    return [json.loads(block[len(b"data: ") :]) for block in blocks[:-2]]


# what the upstream receives -----------------------------------------------------------------------


def test_the_upstream_gets_the_gateways_key_and_never_the_clients(
    gemini: GeminiUpstream, gclient: OpenAI, gemini_gateway: Gateway
) -> None:
    stream = gclient.chat.completions.create(model=GEMINI_MODEL, messages=MESSAGES, stream=True)
    assert "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices) == "Hello there"
    [received] = gemini.requests
    assert (received.version, received.model, received.method) == (
        "v1beta",
        "models/gemini-3-pro-preview",
        "streamGenerateContent",
    )
    assert received.query == {"alt": "sse"}
    assert received.headers["x-goog-api-key"] == UPSTREAM_KEY
    assert "authorization" not in received.headers
    assert gemini_gateway.api_key not in json.dumps(received.headers) + json.dumps(received.body)
    assert received.body == {"contents": [{"role": "user", "parts": [{"text": "Hello there"}]}]}


def test_a_whole_answer_uses_generate_content(gemini: GeminiUpstream, gclient: OpenAI) -> None:
    answer = gclient.chat.completions.create(
        model=GEMINI_MODEL, messages=MESSAGES, max_tokens=50, temperature=0.2
    )
    assert answer.choices[0].message.content == "Hello there"
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage is not None and answer.usage.total_tokens == 7
    [received] = gemini.requests
    assert received.method == "generateContent" and received.query == {}
    assert received.headers["x-goog-api-key"] == UPSTREAM_KEY
    assert received.body["generationConfig"] == {"maxOutputTokens": 50, "temperature": 0.2}


def test_a_wildcard_entry_sends_the_rest_of_the_name_as_the_model(
    gemini: GeminiUpstream, gclient: OpenAI
) -> None:
    answer = gclient.chat.completions.create(model="gemini/gemini-2.5-flash-lite", messages=MESSAGES)
    assert answer.model == "gemini/gemini-2.5-flash-lite"
    assert gemini.requests[0].model == "models/gemini-2.5-flash-lite"


def test_tool_schemas_reach_gemini_inside_its_subset(gemini: GeminiUpstream, gclient: OpenAI) -> None:
    tools: Any = [
        {"type": "function", "function": {"name": "order", "parameters": PYDANTIC_LIKE, "strict": True}}
    ]
    gclient.chat.completions.create(
        model=GEMINI_MODEL, messages=MESSAGES, tools=tools, tool_choice="required"
    )
    [declaration] = gemini.requests[0].body["tools"][0]["functionDeclarations"]
    assert declaration["name"] == "order"
    assert_gemini_subset(declaration["parameters"])
    assert gemini.requests[0].body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}


# tool round trip ---------------------------------------------------------------------------------------


WEATHER: Any = [
    {
        "type": "function",
        "function": {
            "name": "weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]


def test_a_tool_round_trip_through_the_sdk_keeps_the_thought_signature(
    gemini: GeminiUpstream, gclient: OpenAI
) -> None:
    gemini.enqueue(
        Reply(body=orjson.dumps(call_event(("weather", {"city": "Paris"}), ("weather", {"city": "Oslo"}))))
    )
    first = gclient.chat.completions.create(model=GEMINI_MODEL, messages=MESSAGES, tools=WEATHER)
    message = first.choices[0].message
    assert first.choices[0].finish_reason == "tool_calls"
    calls = message.tool_calls or []
    assert [json.loads(c.function.arguments) for c in calls] == [{"city": "Paris"}, {"city": "Oslo"}]  # type: ignore[union-attr]
    assert (calls[0].model_extra or {})["extra_content"] == {"google": {"thought_signature": SIGNATURE}}

    results = [
        {"role": "tool", "tool_call_id": c.id, "content": json.dumps({"temp": t})}
        for c, t in zip(calls, (21, 4), strict=True)
    ]
    gemini.enqueue(Reply(body=orjson.dumps(text_event("Paris 21, Oslo 4.", "STOP", USAGE))))
    second = gclient.chat.completions.create(
        model=GEMINI_MODEL,
        messages=[*MESSAGES, message, *results],
        tools=WEATHER,  # type: ignore[list-item]
    )
    assert second.choices[0].message.content == "Paris 21, Oslo 4."
    contents = gemini.requests[1].body["contents"]
    assert contents[1:] == [
        {
            "role": "model",
            "parts": [
                {
                    "functionCall": {"name": "weather", "args": {"city": "Paris"}},
                    "thoughtSignature": SIGNATURE,
                },
                {"functionCall": {"name": "weather", "args": {"city": "Oslo"}}},
            ],
        },
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "weather", "response": {"temp": 21}}},
                {"functionResponse": {"name": "weather", "response": {"temp": 4}}},
            ],
        },
    ]


def test_a_streamed_tool_call_replayed_without_its_signature_gets_the_bypass(
    gemini: GeminiUpstream, gclient: OpenAI
) -> None:
    gemini.enqueue(events_reply(call_event(("weather", {"city": "Rome"}))))
    stream = gclient.chat.completions.create(
        model=GEMINI_MODEL, messages=MESSAGES, tools=WEATHER, stream=True
    )
    deltas = [call for chunk in stream if chunk.choices for call in chunk.choices[0].delta.tool_calls or ()]
    [delta] = deltas
    assert delta.id and delta.function and delta.function.name == "weather"
    assert json.loads(delta.function.arguments or "") == {"city": "Rome"}
    # a client that rebuilds the call from id, name and arguments only
    replayed = {
        "id": delta.id,
        "type": "function",
        "function": {"name": "weather", "arguments": delta.function.arguments},
    }
    messages: Any = [
        *MESSAGES,
        {"role": "assistant", "tool_calls": [replayed]},
        {"role": "tool", "tool_call_id": delta.id, "content": "sunny"},
    ]
    gclient.chat.completions.create(model=GEMINI_MODEL, messages=messages, tools=WEATHER)
    model_turn = gemini.requests[1].body["contents"][1]
    assert model_turn["parts"][0]["thoughtSignature"] == SKIP_SIGNATURE
    assert gemini.requests[1].body["contents"][2]["parts"][0]["functionResponse"] == {
        "name": "weather",
        "response": {"output": "sunny"},
    }


# several candidates ---------------------------------------------------------------------------------


def test_two_candidates_are_two_choices(gemini: GeminiUpstream, gclient: OpenAI) -> None:
    def candidate(index: int, text: str, finish: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}, "index": index}
        if finish:
            out["finishReason"] = finish
        return out

    gemini.enqueue(
        events_reply(
            {"candidates": [candidate(0, "Red"), candidate(1, "Blue")]},
            {
                "candidates": [candidate(1, " sky", "STOP"), candidate(0, " sun", "MAX_TOKENS")],
                "usageMetadata": USAGE,
            },
        )
    )
    stream = gclient.chat.completions.create(model=GEMINI_MODEL, messages=MESSAGES, n=2, stream=True)
    texts = {0: "", 1: ""}
    finishes: dict[int, str] = {}
    for chunk in stream:
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
            if choice.finish_reason:
                finishes[choice.index] = choice.finish_reason
    assert texts == {0: "Red sun", 1: "Blue sky"}
    assert finishes == {0: "length", 1: "stop"}
    assert gemini.requests[0].body["generationConfig"] == {"candidateCount": 2}


# blocked, failed, cut off ---------------------------------------------------------------------------


BLOCKED = {
    "promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
    "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9},
    "modelVersion": "gemini-3-pro-preview",
}


@pytest.mark.parametrize("stream", [True, False])
def test_a_blocked_prompt_is_a_400_before_the_first_byte(
    stream: bool, gemini: GeminiUpstream, gclient: OpenAI
) -> None:
    gemini.enqueue(events_reply(BLOCKED) if stream else Reply(body=orjson.dumps(BLOCKED)))
    with pytest.raises(openai.BadRequestError) as info:
        gclient.chat.completions.create(model=GEMINI_MODEL, messages=MESSAGES, stream=stream)
    assert info.value.status_code == 400
    assert info.value.code == "content_filter"
    assert "PROHIBITED_CONTENT" in str(info.value.message)


def test_an_answer_stopped_by_safety_is_a_content_filter_finish(
    gemini: GeminiUpstream, gclient: OpenAI
) -> None:
    gemini.enqueue(events_reply(text_event("Partial"), text_event("", "SAFETY", USAGE)))
    stream = gclient.chat.completions.create(model=GEMINI_MODEL, messages=MESSAGES, stream=True)
    assert [c.choices[0].finish_reason for c in stream if c.choices and c.choices[0].finish_reason] == [
        "content_filter"
    ]


def test_upstream_http_errors_keep_their_meaning(
    gemini: GeminiUpstream, gclient: OpenAI, gemini_gateway: Gateway
) -> None:
    retry = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "12s"}]
    gemini.enqueue(
        Reply(status=429, body=error_body(429, "Resource has been exhausted", "RESOURCE_EXHAUSTED", retry))
    )
    with pytest.raises(openai.RateLimitError) as limited:
        gclient.chat.completions.create(model=GEMINI_MODEL, messages=MESSAGES, stream=True)
    assert limited.value.response.headers["retry-after"] == "12"

    bad_key = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}]
    gemini.enqueue(Reply(status=400, body=error_body(400, "API key not valid.", "INVALID_ARGUMENT", bad_key)))
    with pytest.raises(openai.APIStatusError) as refused:
        gclient.chat.completions.create(model=GEMINI_MODEL, messages=MESSAGES)
    assert refused.value.status_code == 502

    gemini.enqueue(Reply(status=404, body=error_body(404, "models/gemini-9 is not found", "NOT_FOUND")))
    with pytest.raises(openai.NotFoundError):
        gclient.chat.completions.create(model="gemini/gemini-9", messages=MESSAGES)

    gemini.enqueue(Reply(status=404, body=error_body(404, "models/x is not found", "NOT_FOUND")))
    with pytest.raises(openai.APIStatusError) as entry:
        gclient.chat.completions.create(model=GEMINI_25, messages=MESSAGES)
    assert entry.value.status_code == 502 and f"model entry `{GEMINI_25}`" in str(entry.value.message)


def test_an_error_mid_stream_is_an_error_event_after_the_text(
    gemini: GeminiUpstream, gemini_gateway: Gateway
) -> None:
    overloaded = {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}
    # in one write, so (most likely) one network read: the text before the error still counts
    wire = b"".join(frame(e) for e in (text_event("Hel"), text_event("lo"), overloaded))
    gemini.enqueue(Reply(chunks=[wire]))
    events = data_events(raw_stream(gemini_gateway))
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in events[:-1]) == "Hello"
    assert "503" in events[-1]["error"]["message"]  # the gateway's words; Google's go to the log
    assert "The model is overloaded." not in events[-1]["error"]["message"]
    assert events[-1]["error"]["code"] == "service_unavailable"


def test_an_early_error_event_is_an_http_error(gemini: GeminiUpstream, gclient: OpenAI) -> None:
    gemini.enqueue(events_reply({"error": {"code": 500, "message": "Internal error", "status": "INTERNAL"}}))
    with pytest.raises(openai.APIStatusError) as info:
        gclient.chat.completions.create(model=GEMINI_MODEL, messages=MESSAGES, stream=True)
    assert info.value.status_code == 502


def test_a_stream_cut_before_its_finish_reason_ends_with_an_error_event(
    gemini: GeminiUpstream, gemini_gateway: Gateway
) -> None:
    gemini.enqueue(events_reply(text_event("Half an ans"), text_event("wer")))
    events = data_events(raw_stream(gemini_gateway))
    assert "before it finished" in events[-1]["error"]["message"]
    assert all(c["choices"][0]["finish_reason"] is None for c in events[:-1])


def test_bytes_cut_across_writes_arrive_whole(gemini: GeminiUpstream, gclient: OpenAI) -> None:
    wire = b"".join(
        frame(e) for e in (text_event("Grüße "), text_event("aus 日本 🙂"), text_event("!", "STOP", USAGE))
    )
    cuts = [0, 3, 17, wire.index("ü".encode()) + 1, wire.index("🙂".encode()) + 2, len(wire) - 3, len(wire)]
    gemini.enqueue(Reply(chunks=[wire[a:b] for a, b in itertools.pairwise(cuts)], delay_s=0.01))
    stream = gclient.chat.completions.create(
        model=GEMINI_MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Grüße aus 日本 🙂!"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 6


# countTokens -----------------------------------------------------------------------------------------


async def test_count_tokens_asks_gemini(gemini: GeminiUpstream) -> None:
    config = GeminiConfig(
        name="g",
        provider="gemini",
        base_url=gemini.base_url,
        api_key=UPSTREAM_KEY,
        upstream_model="gemini-2.5-flash",
    )
    provider = GeminiProvider(config)
    await provider.start()
    try:
        gemini.enqueue(Reply(body=b'{"totalTokens": 31, "promptTokensDetails": []}'))
        request = ChatRequest(
            model="g", messages=[{"role": "system", "content": "Be brief."}, *MESSAGES], raw={}, tools=WEATHER
        )
        assert await provider.count_tokens(request) == 31
    finally:
        await provider.close()
    [received] = gemini.requests
    assert (received.model, received.method) == ("models/gemini-2.5-flash", "countTokens")
    assert received.headers["x-goog-api-key"] == UPSTREAM_KEY
    inner = received.body["generateContentRequest"]
    assert inner["model"] == "models/gemini-2.5-flash"
    assert inner["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert inner["tools"][0]["functionDeclarations"][0]["name"] == "weather"
