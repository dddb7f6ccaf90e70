"""Builds the configured providers and finds the one that serves a model name.

Every model entry is served by a `Router` over its deployments (a single-deployment entry is
its own deployment), so retries, fail-over, fallbacks and cooldowns work the same for all.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sluicegate.errors import ModelNotFoundError
from sluicegate.providers.base import Provider
from sluicegate.routing.build import build_routers
from sluicegate.routing.router import Router
from sluicegate.routing.shared import SharedCooldowns


@dataclass(frozen=True, slots=True)
class Route:
    """What serves a requested model name: the provider, the name its answers carry, and the
    upstream model a wildcard entry derived from the name (None: the entry's own)."""

    provider: Provider
    model: str
    upstream_model: str | None = None
    config: Any = None  # the model entry (a providers.config.ModelEntry)


class ModelRegistry:
    """Model names, their aliases and wildcard prefixes -> the provider that serves them."""

    def __init__(
        self,
        providers: dict[str, Provider],
        aliases: dict[str, str] | None = None,
        kinds: dict[str, str] | None = None,
        configs: dict[str, Any] | None = None,
    ) -> None:
        self._providers = providers
        self._configs = dict(configs or {})
        self._exact = {n: p for n, p in providers.items() if not n.endswith("/*")}
        self._aliases = dict(aliases or {})
        for alias, name in self._aliases.items():
            self._exact[alias] = providers[name]
        # longest prefix first, so `openai/gpt-4o/*` wins over `openai/*`
        self._prefixes = sorted(
            ((n[:-1], p) for n, p in providers.items() if n.endswith("/*")), key=lambda item: -len(item[0])
        )
        self._kinds = dict(kinds or {})

    @classmethod
    def from_configs(cls, configs: Sequence[Any], shared: SharedCooldowns | None = None) -> ModelRegistry:
        """`shared`: the Redis store through which replicas share deployment cooldowns."""
        routers = build_routers(configs, shared)
        providers: dict[str, Provider] = dict(routers)
        aliases = {alias: config.name for config in configs for alias in config.aliases}
        kinds = {config.name: routers[config.name].kind for config in configs}
        return cls(providers, aliases, kinds, {config.name: config for config in configs})

    def routers(self) -> list[Router]:
        """The routers of every model entry: their `stats`, and each deployment's `stats` and
        `breaker.state`, are what the metrics report."""
        return [provider for provider in self._providers.values() if isinstance(provider, Router)]

    def names(self) -> list[str]:
        """Every name a client may ask for: the models (a wildcard as itself), then aliases."""
        return [*self._providers, *self._aliases]

    def alias_target(self, name: str) -> str | None:
        return self._aliases.get(name)

    def kind(self, name: str) -> str:
        """The provider kind (local, openai...) of a configured entry."""
        return self._kinds.get(name, "")

    def mode(self, name: str) -> str:
        """What a configured entry (or alias) does: `chat` or `embeddings`."""
        config = self._configs.get(self._aliases.get(name, name))
        if config is None:
            return "chat"
        return "embeddings" if getattr(config, "provider", "") == "embedded" else str(config.mode)

    def providers(self) -> list[Provider]:
        return list(self._providers.values())

    def resolve(self, model: str) -> Route:
        provider = self._exact.get(model)
        if provider is not None:
            return Route(provider, provider.name, None, self._configs.get(provider.name))
        for prefix, provider in self._prefixes:
            if model.startswith(prefix) and len(model) > len(prefix):
                return Route(provider, model, model[len(prefix) :], self._configs.get(provider.name))
        message = f"The model `{model}` does not exist or you do not have access to it."
        extra: dict[str, object] = {}
        close = difflib.get_close_matches(model, self.names(), n=1, cutoff=0.6)
        if close:
            message += f" Did you mean `{close[0]}`?"
            extra["did_you_mean"] = close[0]
        raise ModelNotFoundError(message, param="model", extra=extra)

    def get(self, model: str) -> Provider:
        return self.resolve(model).provider
