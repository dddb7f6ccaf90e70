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
    """Model names and their aliases -> the provider that serves them."""

    def __init__(self, providers: dict[str, Provider], aliases: dict[str, str] | None = None) -> None:
        self._providers = providers
        self._routes = dict(providers)
        for alias, name in (aliases or {}).items():
            self._routes[alias] = providers[name]

    @classmethod
    def from_configs(cls, configs: list[ModelConfig]) -> ModelRegistry:
        providers = {config.name: build_provider(config) for config in configs}
        aliases = {alias: config.name for config in configs for alias in config.aliases}
        return cls(providers, aliases)

    def names(self) -> list[str]:
        """Every name a client may ask for: the models, then their aliases."""
        return list(self._routes)

    def providers(self) -> list[Provider]:
        return list(self._providers.values())

    def get(self, model: str) -> Provider:
        provider = self._routes.get(model)
        if provider is not None:
            return provider
        message = f"The model `{model}` does not exist or you do not have access to it."
        extra: dict[str, object] = {}
        close = difflib.get_close_matches(model, self._routes, n=1, cutoff=0.6)
        if close:
            message += f" Did you mean `{close[0]}`?"
            extra["did_you_mean"] = close[0]
        raise ModelNotFoundError(message, param="model", extra=extra)
