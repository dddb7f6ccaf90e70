"""Real Gemini recordings (vercel-ai's `google-*` fixtures) replayed by a local server speaking
Gemini's wire format, through a real `sluicegate serve`, read with the official `openai` SDK.

What the client gets must be what the recording says: the full text, the thoughts as
`reasoning_content`, every function call with arguments that parse and equal the recorded
ones (whole `args`, or streamed `partialArgs` rebuilt), the finish reason and the usage.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from jsonschema import Draft202012Validator
from openai import OpenAI
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from tests.conftest import SHARED_FIXTURES
from tests.providers.gemini.conftest import GEMINI_MODEL
from tests.providers.test_recorded_streams import SPEC_URI, openapi_to_json_schema
from tests.support.gemini_upstream import GeminiUpstream, Reply, recording_lines, replay
from tests.support.server import Gateway

MESSAGES: Any = [{"role": "user", "content": "How many r's are in strawberry?"}]
FINISH = {"STOP": "stop", "MAX_TOKENS": "length"}


def recordings(suffix: str) -> list[str]:
    folder = SHARED_FIXTURES / "vercel-ai"
    if not folder.is_dir():
        return ["(no recordings)"]
    return sorted(p.name for p in folder.glob(f"google-*{suffix}"))


def set_path(target: dict[str, Any], path: str, value: Any) -> None:
    """The test's own reading of a `partialArgs` piece: `$.a.b[0].c` -> target[a][b][0][c]."""
    steps = [int(s[1:-1]) if s.startswith("[") else s for s in re.findall(r"\[\d+\]|[^.\[\]$]+", path)]
    node: Any = target
    for step, nxt in zip(steps, [*steps[1:], None], strict=True):
        if nxt is None:
            break
        if isinstance(node, list):
            node.extend([None] * (step + 1 - len(node)))  # type: ignore[operator]
            node[step] = node[step] if node[step] is not None else ([] if isinstance(nxt, int) else {})  # type: ignore[index]
            node = node[step]  # type: ignore[index]
        else:
            node = node.setdefault(step, [] if isinstance(nxt, int) else {})
    last = steps[-1]
    if isinstance(node, list):
        node.extend([None] * (int(last) + 1 - len(node)))
        node[int(last)] = value
    else:
        node[last] = value


def expected(events: list[dict[str, Any]]) -> dict[str, Any]:
    """What the recording says, read independently of the gateway's parser."""
    text = reasoning = ""
    calls: list[dict[str, Any]] = []
    pieces: dict[str, str | Any] | None = None
    finish = None
    usage: dict[str, Any] | None = None
    for event in events:
        if "promptTokenCount" in event.get("usageMetadata", {}):
            usage = event["usageMetadata"]
        for candidate in event.get("candidates", []):
            for part in candidate.get("content", {}).get("parts", []):
                call = part.get("functionCall")
                if call is None:
                    if part.get("thought"):
                        reasoning += part.get("text", "")
                    else:
                        text += part.get("text", "")
                    continue
                if call.get("name"):
                    calls.append(
                        {
                            "name": call["name"],
                            "args": call.get("args", {}),
                            "signature": part.get("thoughtSignature"),
                        }
                    )
                    pieces = {} if call.get("willContinue") else None
                for piece in call.get("partialArgs", []):
                    assert pieces is not None
                    value = next(piece[k] for k in piece if k.endswith("Value"))
                    old = pieces.get(piece["jsonPath"])
                    pieces[piece["jsonPath"]] = old + value if isinstance(old, str) else value
                if pieces is not None and not call.get("willContinue"):
                    for path, value in pieces.items():
                        set_path(calls[-1]["args"], path, value)
                    pieces = None
            finish = candidate.get("finishReason") or finish
    return {
        "text": text,
        "reasoning": reasoning,
        "calls": calls,
        "finish": "tool_calls" if calls else FINISH[finish or "STOP"],
        "usage": usage,
    }


def stream_through_sdk(client: OpenAI) -> dict[str, Any]:
    stream = client.chat.completions.create(
        model=GEMINI_MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    text = reasoning = ""
    calls: dict[int, dict[str, Any]] = {}
    finishes: list[str] = []
    usage = None
    for chunk in stream:
        assert chunk.model == GEMINI_MODEL
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            assert choice.index == 0
            delta = choice.delta
            text += delta.content or ""
            reasoning += (delta.model_extra or {}).get("reasoning_content") or ""
            for call in delta.tool_calls or ():
                entry = calls.setdefault(call.index, {"id": None, "name": None, "arguments": "", "extra": {}})
                if call.id:
                    assert entry["id"] is None, "the id comes once"
                    entry["id"] = call.id
                if call.function and call.function.name:
                    assert entry["name"] is None, "the name comes once"
                    entry["name"] = call.function.name
                entry["arguments"] += (call.function.arguments if call.function else None) or ""
                entry["extra"].update(call.model_extra or {})
            if choice.finish_reason:
                finishes.append(choice.finish_reason)
    return {"text": text, "reasoning": reasoning, "calls": calls, "finishes": finishes, "usage": usage}


@pytest.mark.parametrize("name", recordings(".chunks.txt"))
def test_recorded_stream_through_the_openai_sdk(
    name: str, shared_fixtures: Path, gemini: GeminiUpstream, gclient: OpenAI
) -> None:
    path = shared_fixtures / "vercel-ai" / name
    want = expected([json.loads(line) for line in recording_lines(path)])
    gemini.enqueue(replay(path))

    got = stream_through_sdk(gclient)

    assert want["text"] or want["calls"], "the recording says something"
    assert got["text"] == want["text"]
    assert got["reasoning"] == want["reasoning"]
    assert got["finishes"] == [want["finish"]]
    assert sorted(got["calls"]) == list(range(len(want["calls"])))
    for index, call in enumerate(want["calls"]):
        sent = got["calls"][index]
        assert sent["id"].startswith("call_") and sent["name"] == call["name"]
        assert json.loads(sent["arguments"]) == call["args"]
        if call["signature"]:
            assert sent["extra"]["extra_content"] == {"google": {"thought_signature": call["signature"]}}
        else:
            assert "extra_content" not in sent["extra"]
    assert len({call["id"] for call in got["calls"].values()}) == len(got["calls"])
    usage = want["usage"]
    assert got["usage"] is not None and usage is not None
    thoughts = usage.get("thoughtsTokenCount", 0)
    assert got["usage"].prompt_tokens == usage["promptTokenCount"]
    assert got["usage"].completion_tokens == usage["candidatesTokenCount"] + thoughts
    assert got["usage"].total_tokens == usage["totalTokenCount"]
    if thoughts:
        assert got["usage"].completion_tokens_details is not None
        assert got["usage"].completion_tokens_details.reasoning_tokens == thoughts


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


@pytest.mark.parametrize("name", recordings(".chunks.txt"))
def test_every_chunk_of_a_recorded_stream_validates_against_openais_schema(
    name: str,
    shared_fixtures: Path,
    gemini: GeminiUpstream,
    gemini_gateway: Gateway,
    chunk_validator: Draft202012Validator,
) -> None:
    gemini.enqueue(replay(shared_fixtures / "vercel-ai" / name, newline=b"\n"))
    response = httpx.post(
        gemini_gateway.v1 + "/chat/completions",
        json={
            "model": GEMINI_MODEL,
            "messages": MESSAGES,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
        headers={"Authorization": f"Bearer {gemini_gateway.api_key}"},
        timeout=15,
    )
    assert response.status_code == 200, response.text
    blocks = response.content.split(b"\n\n")
    assert blocks[-2:] == [b"data: [DONE]", b""]
    chunks = [json.loads(block[len(b"data: ") :]) for block in blocks[:-2]]
    for chunk in chunks:
        errors = sorted(chunk_validator.iter_errors(chunk), key=str)
        assert not errors, f"{chunk}\n{errors[0]}"
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0


@pytest.mark.parametrize("name", recordings(".json"))
def test_recorded_whole_answer_through_the_openai_sdk(
    name: str, shared_fixtures: Path, gemini: GeminiUpstream, gclient: OpenAI
) -> None:
    raw = (shared_fixtures / "vercel-ai" / name).read_bytes()
    recorded = json.loads(raw)
    want = expected([recorded])
    gemini.enqueue(Reply(body=raw))

    answer = gclient.chat.completions.create(model=GEMINI_MODEL, messages=MESSAGES)

    assert gemini.requests[-1].method == "generateContent"
    [choice] = answer.choices
    assert (choice.message.content or "") == want["text"]
    assert choice.finish_reason == want["finish"]
    calls = choice.message.tool_calls or []
    assert [(c.function.name, json.loads(c.function.arguments)) for c in calls] == [  # type: ignore[union-attr]
        (call["name"], call["args"]) for call in want["calls"]
    ]
    assert (choice.message.model_extra or {}).get("reasoning_content") is None  # no thought parts recorded
    recorded_parts = recorded["candidates"][0]["content"]["parts"]
    for call, part in zip(calls, [p for p in recorded_parts if "functionCall" in p], strict=True):
        assert call.id.startswith("call_")
        google = (call.model_extra or {})["extra_content"]["google"]
        assert google["thought_signature"] == part["thoughtSignature"]
    usage = recorded["usageMetadata"]
    assert answer.usage is not None
    assert answer.usage.prompt_tokens == usage["promptTokenCount"]
    assert answer.usage.completion_tokens == usage["candidatesTokenCount"] + usage["thoughtsTokenCount"]
    assert answer.usage.total_tokens == usage["totalTokenCount"]
    assert answer.usage.completion_tokens_details is not None
    assert answer.usage.completion_tokens_details.reasoning_tokens == usage["thoughtsTokenCount"]
