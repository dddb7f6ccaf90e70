"""Real providers' recorded streams replayed through the mock upstream and the gateway.

Every chunk the gateway sends must validate against OpenAI's own `CreateChatCompletionStreamResponse`
schema, and the text, reasoning, tool calls, finish reason and usage must survive the trip.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from tests.conftest import SHARED_FIXTURES
from tests.support.openai_calls import DONE, assert_openai_shaped, finishes, stream_events
from tests.support.openai_upstream import OpenAIUpstream, Reply, sse
from tests.support.server import Gateway

SPEC_URI = "urn:openai:openapi"
PROVIDERS = ("openai-", "groq-", "deepseek-", "xai-", "mistral-")


def recordings() -> list[str]:
    folder = SHARED_FIXTURES / "vercel-ai"
    if not folder.is_dir():
        return ["(no recordings)"]
    return sorted(
        p.name for p in folder.glob("*.chunks.txt") if p.name.startswith(PROVIDERS) and holds_chat_chunks(p)
    )


def holds_chat_chunks(path: Path) -> bool:
    """Only chat-completion recordings (openai-completion-text is the legacy completions API)."""
    lines = [line for line in path.read_bytes().splitlines() if line.strip()]
    return bool(lines) and all(json.loads(line).get("object") == "chat.completion.chunk" for line in lines)


def openapi_to_json_schema(node: Any) -> Any:
    """OpenAPI 3.0's `nullable: true` (still used in this 3.1 file) -> JSON Schema's `null` branch."""
    if isinstance(node, list):
        return [openapi_to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: openapi_to_json_schema(value) for key, value in node.items()}
    if converted.get("nullable") is True:
        converted.pop("nullable")
        return {"anyOf": [converted, {"type": "null"}]}
    return converted


@pytest.fixture(scope="session")
def chunk_validator(shared_fixtures: Path) -> Draft202012Validator:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with (shared_fixtures / "openai-openapi.yaml").open("rb") as file:
        spec = openapi_to_json_schema(yaml.load(file, Loader=loader))
    registry: Registry[Any] = Registry().with_resource(
        SPEC_URI, Resource.from_contents(spec, default_specification=DRAFT202012)
    )
    schema = {"$ref": f"{SPEC_URI}#/components/schemas/CreateChatCompletionStreamResponse"}
    return Draft202012Validator(schema, registry=registry)


def test_the_schema_is_strict_enough_to_catch_mistakes(chunk_validator: Draft202012Validator) -> None:
    good = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": {"content": "x"}, "logprobs": None, "finish_reason": None}],
        "usage": None,
    }
    assert chunk_validator.is_valid(good)
    bad_choice = {"index": 0, "delta": {"content": [{"type": "text"}]}, "finish_reason": None}
    bad_usage = {"prompt_tokens": 1, "completion_tokens": 1}
    for broken in (
        {**good, "object": "chat.completion"},
        {k: v for k, v in good.items() if k != "id"},
        {**good, "choices": [{**good["choices"][0], "finish_reason": "eos"}]},
        {**good, "choices": [bad_choice]},
        {**good, "usage": bad_usage},
        {**good, "choices": [{"index": 0, "delta": {"tool_calls": [{"id": "x"}]}, "finish_reason": None}]},
    ):
        assert not chunk_validator.is_valid(broken), broken


def text_parts(content: Any, kind: str) -> str:
    """A delta's `content` as text (`kind="text"`) or its Mistral thinking parts (`kind="thinking"`)."""
    if isinstance(content, str):
        return content if kind == "text" else ""
    out = ""
    for part in content if isinstance(content, list) else ():
        if kind == "text" and part.get("type") == "text":
            out += part.get("text") or ""
        if kind == "thinking" and part.get("type") == "thinking":
            thinking = part.get("thinking")
            out += thinking if isinstance(thinking, str) else "".join(p.get("text", "") for p in thinking)
    return out


def summarize(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    """What a client makes of a stream: text, reasoning, tool calls, finish reason, usage."""
    text = reasoning = ""
    calls: dict[int, dict[str, str]] = {}
    finish: str | None = None
    usage: dict[str, Any] | None = None
    for item in chunks:
        if item.get("usage"):
            usage = item["usage"]
        for choice in item.get("choices") or ():
            delta = choice.get("delta") or {}
            text += text_parts(delta.get("content"), "text")
            reasoning += text_parts(delta.get("content"), "thinking")
            reasoning += delta.get("reasoning_content") or delta.get("reasoning") or ""
            for position, call in enumerate(delta.get("tool_calls") or ()):
                entry = calls.setdefault(call.get("index", position), {"id": "", "name": "", "arguments": ""})
                entry["id"] = entry["id"] or call.get("id") or ""
                function = call.get("function") or {}
                if function.get("name") and function["name"] != entry["name"]:
                    entry["name"] += function["name"]
                entry["arguments"] += function.get("arguments") or ""
            if choice.get("finish_reason"):
                finish = choice["finish_reason"]
    counted = None
    if usage is not None:
        counted = {k: v for k, v in usage.items() if k.endswith("_tokens") or k.endswith("_tokens_details")}
        counted = {k: v for k, v in counted.items() if not k.startswith("prompt_cache")}
    return {"text": text, "reasoning": reasoning, "calls": calls, "finish": finish, "usage": counted}


@pytest.mark.parametrize("name", recordings())
def test_recorded_stream_through_the_gateway(
    name: str,
    shared_fixtures: Path,
    gateway: Gateway,
    clean_upstream: OpenAIUpstream,
    chunk_validator: Draft202012Validator,
) -> None:
    lines = [
        line for line in (shared_fixtures / "vercel-ai" / name).read_bytes().splitlines() if line.strip()
    ]
    payloads = [json.loads(line) for line in lines]
    clean_upstream.enqueue(Reply(chunks=[*(sse(line) for line in lines), DONE]))

    chunks = stream_events(gateway, stream_options={"include_usage": True})

    for item in chunks:
        errors = sorted(chunk_validator.iter_errors(item), key=str)
        assert not errors, f"{item}\n{errors[0]}"
    assert_openai_shaped(chunks, include_usage=True)
    expected, got = summarize(payloads), summarize(chunks)
    assert expected["text"] or expected["calls"], "the recording says something"
    assert got["text"] == expected["text"]
    assert got["reasoning"] == expected["reasoning"]
    assert got["calls"] == expected["calls"]
    assert got["finish"] == expected["finish"]
    if expected["usage"] is not None:
        assert chunks[-1]["choices"] == []
        assert got["usage"] == expected["usage"]


@pytest.mark.parametrize("n", [1, 2])
def test_the_embedded_model_stream_validates_against_the_spec(
    n: int, gateway: Gateway, chunk_validator: Draft202012Validator
) -> None:
    chunks = stream_events(
        gateway, model=gateway.model, max_tokens=6, n=n, stream_options={"include_usage": True}
    )
    assert len(chunks) > 3
    for item in chunks:
        errors = sorted(chunk_validator.iter_errors(item), key=str)
        assert not errors, f"{item}\n{errors[0]}"
    assert_openai_shaped(chunks, include_usage=True, model=gateway.model)
    assert 0 < chunks[-1]["usage"]["completion_tokens"] <= 6 * n
    assert set(finishes(chunks)) == set(range(n))
