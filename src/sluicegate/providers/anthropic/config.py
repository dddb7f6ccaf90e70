"""Config of an Anthropic Messages API upstream."""

from __future__ import annotations

from typing import Literal

from sluicegate.model_config.entry import HTTPModelEntry

ANTHROPIC_BASE_URL = "https://api.anthropic.com"


class AnthropicConfig(HTTPModelEntry):
    provider: Literal["anthropic"]
    base_url: str = ANTHROPIC_BASE_URL  # the provider adds /v1/messages
    anthropic_version: str = "2023-06-01"
    # the byte relay (providers/anthropic/relay.py): a Messages client's stream gets the text
    # events' pieces as this upstream wrote them, undecoded; off: every event decoded and encoded again
    passthrough: bool = True
