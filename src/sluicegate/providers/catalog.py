"""The providers sluicegate knows: each one's config model and the factory that builds it.

Adding a provider is a folder under `providers/` and one line here; the settings take the
union of the config models, told apart by their `provider` field. Factories are named, not
imported, so reading a config never imports llama.cpp or an HTTP client.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field

from sluicegate.extras import LOCAL, Extra, require
from sluicegate.model_config.entry import ModelEntry
from sluicegate.providers.anthropic.config import AnthropicConfig
from sluicegate.providers.embedded.config import EmbeddedConfig
from sluicegate.providers.gemini.config import GeminiConfig
from sluicegate.providers.local.config import LocalConfig
from sluicegate.providers.openai.config import OpenAIConfig

if TYPE_CHECKING:
    from sluicegate.providers.base import Provider


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    config: type[ModelEntry]
    factory: str  # "module:Class", called with the model entry
    extra: Extra | None = None  # the optional part of the install it needs


PROVIDERS: dict[str, ProviderSpec] = {
    "local": ProviderSpec(LocalConfig, "sluicegate.providers.local.provider:LocalProvider", LOCAL),
    "openai": ProviderSpec(OpenAIConfig, "sluicegate.providers.openai.provider:OpenAIProvider"),
    "anthropic": ProviderSpec(AnthropicConfig, "sluicegate.providers.anthropic.provider:AnthropicProvider"),
    "gemini": ProviderSpec(GeminiConfig, "sluicegate.providers.gemini.provider:GeminiProvider"),
    "embedded": ProviderSpec(EmbeddedConfig, "sluicegate.providers.embedded.provider:EmbeddedProvider"),
}

ModelConfig = Annotated[
    LocalConfig | OpenAIConfig | AnthropicConfig | GeminiConfig | EmbeddedConfig,
    Field(discriminator="provider"),
]


def build_provider(config: Any) -> Provider:
    spec = PROVIDERS[config.provider]
    if spec.extra is not None:
        require(spec.extra, f"model {config.name!r} (provider: {config.provider})")
    module_name, _, class_name = spec.factory.partition(":")
    factory = getattr(importlib.import_module(module_name), class_name)
    provider: Provider = factory(config)
    return provider
