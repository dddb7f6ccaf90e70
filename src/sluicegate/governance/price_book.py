"""Which price a request is billed at, and which prices its reservation must cover.

A request is billed at the price of what answered: the answering deployment's own `price:`
where it has one, else its model entry's (a fallback's entry, when a fallback answered). Before
the call nothing is known of what will answer, so a reservation covers the dearest of what may:
every deployment of the model asked for and of each fallback the key may use, each with its
entry's `max_output_tokens` when the request sets no `max_tokens`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sluicegate.governance.pricing import NANOS_PER_TOKEN_UNIT
from sluicegate.model_config.entry import DEFAULT_MAX_OUTPUT_TOKENS, Price


@dataclass(frozen=True, slots=True)
class Candidate:
    """One way a request may be answered, as far as its most cost goes (USD per million)."""

    input: float
    output: float
    max_output_tokens: int


class PriceBook:
    """Prices looked up once per (entry, deployment) and per (entry, key model list): the
    entries are fixed for the gateway's life, and this runs on every priced request."""

    def __init__(self, models: dict[str, Any], providers: dict[str, Any]) -> None:
        self.models = models  # entry name -> ModelEntry (its price, its output limit)
        self.providers = providers  # entry name -> provider (a Router: deployments, fallbacks)
        self._prices: dict[tuple[str, str], Price | None] = {}
        self._candidates: dict[tuple[str, Any], tuple[Candidate, ...]] = {}

    def answered_by(self, entry: str, deployment: str) -> Any:
        """The provider that answered: the entry's deployment of that name when it has several."""
        served = self.providers.get(entry)
        deployments = getattr(served, "deployments", None)
        if not deployments:
            return served
        chosen = next((d for d in deployments if d.name == deployment), deployments[0])
        return chosen.provider

    def price(self, entry: str, deployment: str) -> Price | None:
        """The price of what answered: the deployment's own, else its entry's."""
        pair = (entry, deployment)
        if pair in self._prices:
            return self._prices[pair]
        price = getattr(getattr(self.answered_by(entry, deployment), "config", None), "price", None)
        if not isinstance(price, Price):
            price = getattr(self.models.get(entry), "price", None)
        found = self._prices[pair] = price if isinstance(price, Price) else None
        return found

    def most(
        self, entry: str, models: tuple[str, ...] | None, may_use: Callable[[str], bool] | None
    ) -> tuple[Candidate, ...]:
        """The priced ways the request may be answered: the entry's deployments and those of
        the fallbacks the key may use (`models` is the key's list, the cache's key)."""
        cached = self._candidates.get((entry, models))
        if cached is not None:
            return cached
        router = self.providers.get(entry)
        entries = [entry]
        for fallback in getattr(router, "fallbacks", ()):
            if may_use is None or may_use(fallback.name):
                entries.append(fallback.name)
        found: dict[Candidate, None] = {}
        for name in entries:
            limit = getattr(self.models.get(name), "max_output_tokens", None) or DEFAULT_MAX_OUTPUT_TOKENS
            deployments = getattr(self.providers.get(name), "deployments", None) or ()
            for deployment_name in [d.name for d in deployments] or [name]:
                price = self.price(name, deployment_name)
                if price is not None:
                    found[Candidate(price.input, price.output, limit)] = None
        result = self._candidates[(entry, models)] = tuple(found)
        return result

    @staticmethod
    def estimate(candidates: tuple[Candidate, ...], prompt: int, max_tokens: int | None, choices: int) -> int:
        """The most the request may cost (nano-dollars) over its candidates."""
        most = 0
        for candidate in candidates:
            completion = (max_tokens or candidate.max_output_tokens) * choices
            cost = (prompt * candidate.input + completion * candidate.output) * NANOS_PER_TOKEN_UNIT
            most = max(most, round(cost))
        return most
