"""An OpenAI upstream's refusals, logprobs, response metadata and fields sluicegate has no
name for reach the OpenAI SDK client unchanged, streaming and not."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
from openai import OpenAI

from tests.conftest import UPSTREAM_MODEL
from tests.support.openai_calls import MESSAGES, completion_body, raw_chunk, usage_chunk
from tests.support.openai_upstream import OpenAIUpstream, Reply
from tests.support.server import Gateway

DONE = b"data: [DONE]\n\n"
META = {"system_fingerprint": "fp_up42", "service_tier": "default"}


def logprob(token: str, value: float) -> dict[str, Any]:
    return {"token": token, "logprob": value, "bytes": list(token.encode()), "top_logprobs": []}


def test_streamed_refusal_reaches_the_client(client: OpenAI, clean_upstream: OpenAIUpstream) -> None:
    clean_upstream.enqueue(
        Reply(
            chunks=[
                raw_chunk([{"index": 0, "delta": {"role": "assistant", "refusal": ""}, "finish_reason": None}], **META),
                raw_chunk([{"index": 0, "delta": {"refusal": "I can't help"}, "finish_reason": None}], **META),
                raw_chunk([{"index": 0, "delta": {"refusal": " with that."}, "finish_reason": None}], **META),
                raw_chunk([{"index": 0, "delta": {}, "finish_reason": "stop"}], **META),
                DONE,
            ]
        )
    )
    chunks = list(client.chat.completions.create(model=UPSTREAM_MODEL, messages=MESSAGES, stream=True))
    refusal = "".join(c.choices[0].delta.refusal or "" for c in chunks if c.choices)
    assert refusal == "I can't help with that."
    assert all(not c.choices[0].delta.content for c in chunks if c.choices)
    assert {c.system_fingerprint for c in chunks[1:]} == {"fp_up42"}
    assert {c.service_tier for c in chunks[1:]} == {"default"}
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_streamed_logprobs_reach_the_client(client: OpenAI, clean_upstream: OpenAIUpstream) -> None:
    clean_upstream.enqueue(
        Reply(
            chunks=[
                raw_chunk(
                    [
                        {
                            "index": 0,
                            "delta": {"content": "Hi"},
                            "logprobs": {"content": [logprob("Hi", -0.25)], "refusal": None},
                            "finish_reason": None,
                        }
                    ]
                ),
                raw_chunk(
                    [
                        {
                            "index": 0,
                            "delta": {"content": " there"},
                            "logprobs": {"content": [logprob(" there", -1.5)], "refusal": None},
                            "finish_reason": None,
                        }
                    ]
                ),
                raw_chunk([{"index": 0, "delta": {}, "finish_reason": "stop"}]),
                usage_chunk(3, 2),
                DONE,
            ]
        )
    )
    chunks = list(
        client.chat.completions.create(
            model=UPSTREAM_MODEL, messages=MESSAGES, stream=True, logprobs=True, top_logprobs=0
        )
    )
    entries = [e for c in chunks if c.choices and c.choices[0].logprobs for e in c.choices[0].logprobs.content or []]
    assert [(e.token, e.logprob) for e in entries] == [("Hi", -0.25), (" there", -1.5)]
    [sent] = clean_upstream.requests
    assert sent["logprobs"] is True and sent["top_logprobs"] == 0


def test_unknown_delta_and_choice_fields_pass_through(gateway: Gateway, clean_upstream: OpenAIUpstream) -> None:
    annotation = {"type": "url_citation", "url_citation": {"url": "https://example.com", "title": "Ex"}}
    clean_upstream.enqueue(
        Reply(
            chunks=[
                raw_chunk([{"index": 0, "delta": {"content": "See"}, "finish_reason": None}]),
                raw_chunk(
                    [
                        {
                            "index": 0,
                            "delta": {"annotations": [annotation], "audio": {"id": "audio_1", "data": "AAA="}},
                            "finish_reason": None,
                            "brand_new_choice_field": 7,
                        }
                    ]
                ),
                raw_chunk([{"index": 0, "delta": {}, "finish_reason": "stop"}]),
                DONE,
            ]
        )
    )
    body = {"model": UPSTREAM_MODEL, "messages": MESSAGES, "stream": True, "a_new_request_field": {"x": 1}}
    response = httpx.post(
        gateway.v1 + "/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {gateway.api_key}"},
        timeout=15,
    )
    payloads = [
        orjson.loads(line[6:]) for line in response.text.split("\n") if line.startswith("data: {")
    ]
    carrying = [p for p in payloads if p["choices"] and "annotations" in p["choices"][0]["delta"]]
    assert len(carrying) == 1
    choice = carrying[0]["choices"][0]
    assert choice["delta"]["annotations"] == [annotation]
    assert choice["delta"]["audio"] == {"id": "audio_1", "data": "AAA="}
    assert choice["brand_new_choice_field"] == 7
    [sent] = clean_upstream.requests
    assert sent["a_new_request_field"] == {"x": 1}  # unknown request fields reach the upstream too


def test_whole_answer_keeps_refusal_logprobs_metadata_and_unknown_fields(
    client: OpenAI, clean_upstream: OpenAIUpstream
) -> None:
    logprobs = {"content": None, "refusal": [logprob("No", -0.1)]}
    body = orjson.loads(
        completion_body(
            [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": None,
                        "refusal": "No",
                        "annotations": [],
                        "audio": {"id": "audio_9"},
                    },
                    "logprobs": logprobs,
                    "finish_reason": "stop",
                    "content_filter_results": {"hate": {"filtered": False}},
                }
            ]
        )
    )
    body["service_tier"] = "flex"
    clean_upstream.enqueue(Reply(body=orjson.dumps(body)))
    answer = client.chat.completions.create(model=UPSTREAM_MODEL, messages=MESSAGES, logprobs=True)
    choice = answer.choices[0]
    assert choice.message.refusal == "No" and choice.message.content is None
    assert choice.logprobs is not None and choice.logprobs.refusal is not None
    assert [(e.token, e.logprob) for e in choice.logprobs.refusal] == [("No", -0.1)]
    assert answer.system_fingerprint == "fp_1" and answer.service_tier == "flex"
    raw = answer.model_dump(exclude_unset=True)
    assert raw["choices"][0]["message"]["audio"] == {"id": "audio_9"}
    assert raw["choices"][0]["message"]["annotations"] == []
    assert raw["choices"][0]["content_filter_results"] == {"hate": {"filtered": False}}


@pytest.mark.parametrize(("raw", "expected"), [("end_turn", "stop"), ("max_tokens", "length"), ("tool_use", "tool_calls")])
def test_whole_answer_finish_reasons_are_normalised(
    client: OpenAI, clean_upstream: OpenAIUpstream, raw: str, expected: str
) -> None:
    clean_upstream.enqueue(
        Reply(
            body=completion_body(
                [{"index": 0, "message": {"role": "assistant", "content": "x"}, "finish_reason": raw}]
            )
        )
    )
    answer = client.chat.completions.create(model=UPSTREAM_MODEL, messages=MESSAGES)
    assert answer.choices[0].finish_reason == expected


@pytest.mark.parametrize("choices", [["not an object"], [{"index": 0, "message": "text"}], [{"message": {"tool_calls": [3]}}]])
def test_malformed_whole_answer_is_a_502(gateway: Gateway, clean_upstream: OpenAIUpstream, choices: Any) -> None:
    clean_upstream.enqueue(Reply(body=orjson.dumps({"id": "x", "object": "chat.completion", "choices": choices})))
    response = httpx.post(
        gateway.v1 + "/chat/completions",
        json={"model": UPSTREAM_MODEL, "messages": MESSAGES},
        headers={"Authorization": f"Bearer {gateway.api_key}"},
        timeout=15,
    )
    assert response.status_code == 502
    assert response.json()["error"]["type"] == "upstream_error"


def test_unknown_tool_call_fields_pass_through(gateway: Gateway, clean_upstream: OpenAIUpstream) -> None:
    # Google's OpenAI-compatible endpoint puts a thought signature beside each call
    extra = {"extra_content": {"google": {"thought_signature": "c2lnbmF0dXJl"}}}
    call = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}, **extra}
    clean_upstream.enqueue(
        Reply(
            chunks=[
                raw_chunk([{"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": None}]),
                raw_chunk([{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]),
                DONE,
            ]
        ),
        Reply(
            body=completion_body(
                [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": None, "tool_calls": [{k: v for k, v in call.items() if k != "index"}]},
                        "finish_reason": "tool_calls",
                    }
                ]
            )
        ),
    )
    headers = {"Authorization": f"Bearer {gateway.api_key}"}
    body = {"model": UPSTREAM_MODEL, "messages": MESSAGES, "stream": True}
    streamed = httpx.post(gateway.v1 + "/chat/completions", json=body, headers=headers, timeout=15).text
    payloads = [orjson.loads(line[6:]) for line in streamed.split("\n") if line.startswith("data: {")]
    calls = [c for p in payloads if p["choices"] for c in p["choices"][0]["delta"].get("tool_calls") or []]
    assert calls and calls[0]["extra_content"] == extra["extra_content"]
    whole = httpx.post(gateway.v1 + "/chat/completions", json={**body, "stream": False}, headers=headers, timeout=15)
    [whole_call] = whole.json()["choices"][0]["message"]["tool_calls"]
    assert whole_call["extra_content"] == extra["extra_content"]
