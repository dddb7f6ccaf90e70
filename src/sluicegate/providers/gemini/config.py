"""Config of a Google Gemini API upstream."""

from __future__ import annotations

from typing import Literal

from sluicegate.providers.config import HTTPModelEntry

GEMINI_BASE_URL = "https://generativelanguage.googleapis.com"


class GeminiConfig(HTTPModelEntry):
    provider: Literal["gemini"]
    base_url: str = GEMINI_BASE_URL  # the provider adds /v1beta/models/{model}:...
    api_version: str = "v1beta"
