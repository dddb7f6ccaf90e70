"""Builds the configured providers and finds the one that serves a model name.

Every model entry is served by a `Router` over its deployments (a single-deployment entry is
its own deployment), so retries, fail-over, fallbacks and cooldowns work the same for all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from sluicegate.core.model_name import MAX_MODEL_NAME, check_model_name, shown
from sluicegate.core.request import ChatRequest
from sluicegate.errors import ModelNotFoundError
from sluicegate.providers.base import Provider
from sluicegate.routing.router import Router
from sluicegate.routing.shared import SharedCooldowns
from sluicegate.suggest import suggest_model
from sluicegate.wiring.build import build_routers

_TYPO = 8  # characters a mistyped name may have over the longest configured one


@dataclass(frozen=True, slots=True)
class Route:
    """What serves a requested model name: the provider, the name its answers carry, and the
    upstream model a wildcard entry derived from the name (None: the entry's own)."""

    provider: Provider
    model: str
    upstream_model: str | None = None
    config: Any = None  # the model entry (a model_config.entry.ModelEntry)

    def request(self, chat: ChatRequest) -> ChatRequest:
        """`chat` as routed: the upstream model decided here and the entry's default cap on
        the answer's length when the client gave none."""
        cap = getattr(self.config, "default_max_tokens", None)
        max_tokens = cap if chat.max_tokens is None and cap is not None else chat.max_tokens
        if chat.upstream_model == self.upstream_model and chat.max_tokens == max_tokens:
            return chat
        return replace(chat, upstream_model=self.upstream_model, max_tokens=max_tokens)


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
        # a name longer than any configured one (or a wildcard's prefix and model), by more
        # than a typo's few characters, is unknown at once: no search for a close name spends
        # the event loop on it
        self._longest = _TYPO + max(
            [len(name) for name in self._exact] + [len(prefix) + MAX_MODEL_NAME for prefix, _ in self._prefixes],
            default=0,
        )

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
        """The entry serving `model`; a name that is not one opaque identifier is a 400 before
        any entry is looked at, one longer than any configured name a 404 at once."""
        if len(model) > self._longest:
            raise _unknown(model)
        check_model_name(model)
        provider = self._exact.get(model)
        if provider is not None:
            return Route(provider, provider.name, None, self._configs.get(provider.name))
        for prefix, provider in self._prefixes:
            if model.startswith(prefix) and len(prefix) < len(model) <= len(prefix) + MAX_MODEL_NAME:
                return Route(provider, model, model[len(prefix) :], self._configs.get(provider.name))
        raise _unknown(model, suggest_model(model, self._providers, self._aliases))

    def get(self, model: str) -> Provider:
        return self.resolve(model).provider


def _unknown(model: str, close: str | None = None) -> ModelNotFoundError:
    message = f"The model `{shown(model)}` does not exist or you do not have access to it."
    extra: dict[str, object] = {}
    if close is not None:
        message += f" Did you mean `{close}`?"
        extra["did_you_mean"] = close
    return ModelNotFoundError(message, param="model", extra=extra)
