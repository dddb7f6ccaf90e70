"""Config of a Google Gemini API upstream."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from sluicegate.model_config.entry import HTTPModelEntry

GEMINI_BASE_URL = "https://generativelanguage.googleapis.com"


class GeminiConfig(HTTPModelEntry):
    provider: Literal["gemini"]
    base_url: str = GEMINI_BASE_URL  # the provider adds /v1beta/models/{model}:...
    api_version: str = "v1beta"
    # thought summaries as `reasoning_content` even when the client did not ask for reasoning
    include_thoughts: bool = False
    # Gemini's own `safetySettings`, sent with every request: [{category, threshold}, ...]
    safety_settings: list[dict[str, str]] = Field(default_factory=list)
