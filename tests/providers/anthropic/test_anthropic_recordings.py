"""Real recorded Anthropic streams, replayed by the local Anthropic-format upstream through a
real `sluicegate serve`, as the official `openai` SDK receives them: the full text, the tool
calls (arguments that parse and equal the recording's), the finish reason and the usage, streamed
and whole. The expectations are computed here from the recording, not by the provider's code.

Recordings: the Anthropic SDK's stream fixtures (already SSE, sent byte for byte) and vercel-ai's
Anthropic chunk files (re-framed with the `event:` lines the real API sends; files that chain
several steps of a conversation are replayed one answer per request).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator
from openai import OpenAI
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from tests.conftest import SHARED_FIXTURES
from tests.providers.anthropic.conftest import MODEL
from tests.providers.test_recorded_streams import SPEC_URI, openapi_to_json_schema
from tests.support.anthropic_upstream import AnthropicUpstream, Reply, payload_of, recording, whole_message
from tests.support.server import Gateway

FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "refusal": "content_filter"}


def answers() -> list[str]:
    """`file#n` for the n-th answer of each recording."""
    sdk, vercel = SHARED_FIXTURES / "anthropic-sdk-python", SHARED_FIXTURES / "vercel-ai"
    if not sdk.is_dir() or not vercel.is_dir():
        return ["(no recordings)"]
    files = (
        sorted(sdk.glob("*.txt")) + sorted(sdk.glob("*.sse")) + sorted(vercel.glob("anthropic-*.chunks.txt"))
    )
    return [f"{path.parent.name}/{path.name}#{n}" for path in files for n in range(len(recording(path)))]


def load(answer: str, shared_fixtures: Path) -> list[bytes]:
    name, _, n = answer.partition("#")
    return recording(shared_fixtures / name)[int(n)]


def expected_from(payloads: list[dict[str, Any]]) -> dict[str, Any]:
    """What the recording says, in OpenAI's terms."""
    blocks: dict[int, dict[str, Any]] = {}
    order: list[dict[str, Any]] = []
    usage: dict[str, Any] = {}
    stop_reason = None
    refusal = None
    for item in payloads:
        kind = item["type"]
        if kind == "message_start":
            usage.update(item["message"].get("usage") or {})
            stop_reason = item["message"].get("stop_reason") or stop_reason
            for position, content in enumerate(item["message"].get("content") or ()):
                order.append({**content, "partial": ""})
                blocks[-1 - position] = order[-1]
        elif kind == "content_block_start":
            blocks[item["index"]] = {**item["content_block"], "partial": ""}
            order.append(blocks[item["index"]])
        elif kind == "content_block_delta":
            target, delta = blocks[item["index"]], item["delta"]
            if delta["type"] == "text_delta":
                target["text"] = target.get("text", "") + delta["text"]
            elif delta["type"] == "thinking_delta":
                target["thinking"] = target.get("thinking", "") + delta["thinking"]
            elif delta["type"] == "input_json_delta":
                target["partial"] += delta["partial_json"]
        elif kind == "message_delta":
            stop_reason = item["delta"].get("stop_reason") or stop_reason
            refusal = (item["delta"].get("stop_details") or {}).get("explanation") or refusal
            usage.update({k: v for k, v in (item.get("usage") or {}).items() if v is not None})
    calls = [
        {"id": b["id"], "name": b["name"], "arguments": b["partial"] or json.dumps(b.get("input") or {})}
        for b in order
        if b["type"] == "tool_use"
    ]
    finish = "tool_calls" if stop_reason == "tool_use" and calls else FINISH.get(stop_reason or "", "stop")
    prompt = sum(
        usage.get(k) or 0 for k in ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
    )
    return {
        "text": "".join(b.get("text", "") for b in order if b["type"] == "text"),
        "reasoning": "".join(b.get("thinking", "") for b in order if b["type"] == "thinking"),
        "calls": calls,
        "finish": finish,
        "refusal": refusal if stop_reason == "refusal" else None,
        "usage": (prompt, usage.get("output_tokens") or 0, usage.get("cache_read_input_tokens") or 0),
    }


def assert_calls(got: list[dict[str, Any]], expected: list[dict[str, Any]], finish: str) -> None:
    assert [(c["id"], c["name"]) for c in got] == [(c["id"], c["name"]) for c in expected]
    for mine, theirs in zip(got, expected, strict=True):
        if finish == "length":  # the input was cut by max_tokens: the fragments, as sent
            assert mine["arguments"] == theirs["arguments"]
        else:
            assert json.loads(mine["arguments"]) == json.loads(theirs["arguments"])


def replay(upstream: AnthropicUpstream, events: list[bytes]) -> None:
    """The recording as the upstream's bytes, cut into 61-byte writes so JSON objects and UTF-8
    characters straddle network reads."""
    wire = b"".join(events)
    upstream.enqueue(Reply(chunks=[wire[i : i + 61] for i in range(0, len(wire), 61)]))


@pytest.mark.parametrize("answer", answers())
def test_streamed_through_the_openai_sdk(
    answer: str, shared_fixtures: Path, client: OpenAI, upstream: AnthropicUpstream
) -> None:
    events = load(answer, shared_fixtures)
    expected = expected_from([payload_of(item) for item in events])
    replay(upstream, events)

    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Replay"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text = reasoning = refusal = ""
    calls: dict[int, dict[str, Any]] = {}
    finishes: list[str] = []
    usage = None
    for chunk in stream:
        usage = chunk.usage or usage
        for choice in chunk.choices:
            delta = choice.delta
            text += delta.content or ""
            refusal += delta.refusal or ""
            reasoning += getattr(delta, "reasoning_content", None) or ""
            for call in delta.tool_calls or ():
                entry = calls.setdefault(call.index, {"id": None, "name": None, "arguments": ""})
                if call.id:
                    assert entry["id"] is None, "the id comes once"
                    entry["id"] = call.id
                if call.function and call.function.name:
                    assert entry["name"] is None, "the name comes once"
                    entry["name"] = call.function.name
                entry["arguments"] += (call.function.arguments if call.function else None) or ""
            if choice.finish_reason:
                finishes.append(choice.finish_reason)

    assert expected["text"] or expected["calls"] or expected["finish"] != "stop" or expected["usage"][1] > 0
    assert text == expected["text"]
    assert reasoning == expected["reasoning"]
    assert sorted(calls) == list(range(len(calls))), "one index per call, in order"
    assert_calls([calls[i] for i in sorted(calls)], expected["calls"], expected["finish"])
    assert finishes == [expected["finish"]]
    assert (refusal or None) == expected["refusal"]
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens) == expected["usage"][:2]
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == expected["usage"][2]


@pytest.mark.parametrize("answer", answers())
def test_whole_through_the_openai_sdk(
    answer: str, shared_fixtures: Path, client: OpenAI, upstream: AnthropicUpstream
) -> None:
    message = whole_message([payload_of(item) for item in load(answer, shared_fixtures)])
    upstream.enqueue(Reply(body=json.dumps(message).encode()))

    completion = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Replay"}])

    assert upstream.requests[-1]["stream"] is False
    (choice,) = completion.choices
    blocks = message["content"]
    text = "".join(b["text"] for b in blocks if b["type"] == "text")
    assert (choice.message.content or "") == text
    assert (getattr(choice.message, "reasoning_content", None) or "") == "".join(
        b.get("thinking", "") for b in blocks if b["type"] == "thinking"
    )
    tool_uses = [b for b in blocks if b["type"] == "tool_use"]
    calls = choice.message.tool_calls or []
    assert [(c.id, c.function.name) for c in calls] == [(b["id"], b["name"]) for b in tool_uses]  # type: ignore[union-attr]
    assert [json.loads(c.function.arguments) for c in calls] == [b["input"] for b in tool_uses]  # type: ignore[union-attr]
    reason = message["stop_reason"]
    expected = "tool_calls" if reason == "tool_use" and tool_uses else FINISH.get(reason, "stop")
    assert choice.finish_reason == expected
    usage = message["usage"]
    prompt = sum(
        usage.get(k) or 0 for k in ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
    )
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (
        prompt,
        usage["output_tokens"],
    )


@pytest.fixture(scope="module")
def chunk_validator(shared_fixtures: Path) -> Draft202012Validator:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with (shared_fixtures / "openai-openapi.yaml").open("rb") as file:
        spec = openapi_to_json_schema(yaml.load(file, Loader=loader))
    registry: Registry[Any] = Registry().with_resource(
        SPEC_URI, Resource.from_contents(spec, default_specification=DRAFT202012)
    )
    schema = {"$ref": f"{SPEC_URI}#/components/schemas/CreateChatCompletionStreamResponse"}
    return Draft202012Validator(schema, registry=registry)


@pytest.mark.parametrize("answer", answers())
def test_every_chunk_validates_against_openai_s_schema(
    answer: str,
    shared_fixtures: Path,
    anthropic_gateway: Gateway,
    upstream: AnthropicUpstream,
    chunk_validator: Draft202012Validator,
) -> None:
    import httpx

    replay(upstream, load(answer, shared_fixtures))
    response = httpx.post(
        anthropic_gateway.v1 + "/chat/completions",
        json={
            "model": MODEL,
            "messages": [{"role": "user", "content": "Replay"}],
            "stream": True,
            "stream_options": {"include_usage": True},
        },
        headers={"Authorization": f"Bearer {anthropic_gateway.api_key}"},
        timeout=15,
    )
    assert response.status_code == 200
    blocks = response.content.decode().strip().split("\n\n")
    assert blocks[-1] == "data: [DONE]"
    chunks = [json.loads(block[len("data: ") :]) for block in blocks[:-1]]
    assert all("error" not in chunk for chunk in chunks)
    for chunk in chunks:
        errors = sorted(chunk_validator.iter_errors(chunk), key=str)
        assert not errors, f"{chunk}\n{errors[0]}"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] >= 0
