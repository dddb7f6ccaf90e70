"""Config of an Anthropic Messages API upstream."""

from __future__ import annotations

from typing import Literal

from sluicegate.model_config.entry import HTTPModelEntry

ANTHROPIC_BASE_URL = "https://api.anthropic.com"


class AnthropicConfig(HTTPModelEntry):
    provider: Literal["anthropic"]
    base_url: str = ANTHROPIC_BASE_URL  # the provider adds /v1/messages
    anthropic_version: str = "2023-06-01"
