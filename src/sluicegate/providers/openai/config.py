"""Config of an OpenAI-compatible upstream (OpenAI, vLLM, llama.cpp server, Ollama...)."""

from __future__ import annotations

from typing import Literal

from sluicegate.model_config.entry import HTTPModelEntry


class OpenAIConfig(HTTPModelEntry):
    provider: Literal["openai"]
