"""Builds the configured providers and finds one by model name."""

from __future__ import annotations

import difflib

from sluicegate.errors import ModelNotFoundError
from sluicegate.providers.base import Provider
from sluicegate.settings import ModelConfig


def build_provider(config: ModelConfig) -> Provider:
    if config.provider == "local":
        from sluicegate.providers.local.provider import LocalProvider

        return LocalProvider(config)
    from sluicegate.providers.openai.provider import OpenAIProvider

    return OpenAIProvider(config)


class ModelRegistry:
    def __init__(self, providers: dict[str, Provider]) -> None:
        self._providers = providers

    @classmethod
    def from_configs(cls, configs: list[ModelConfig]) -> ModelRegistry:
        return cls({config.name: build_provider(config) for config in configs})

    def names(self) -> list[str]:
        return list(self._providers)

    def providers(self) -> list[Provider]:
        return list(self._providers.values())

    def get(self, model: str) -> Provider:
        provider = self._providers.get(model)
        if provider is not None:
            return provider
        message = f"The model `{model}` does not exist or you do not have access to it."
        extra: dict[str, object] = {}
        close = difflib.get_close_matches(model, self._providers, n=1, cutoff=0.6)
        if close:
            message += f" Did you mean `{close[0]}`?"
            extra["did_you_mean"] = close[0]
        raise ModelNotFoundError(message, param="model", extra=extra)
