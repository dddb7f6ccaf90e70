"""Model entries -> Routers: one per entry, whether it lists deployments or is one itself."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sluicegate.providers.catalog import build_provider
from sluicegate.routing.attempt import Deployment
from sluicegate.routing.router import Router
from sluicegate.routing.shared import SharedCooldowns
from sluicegate.wiring.entry import DeploymentsEntry, apply_timeouts


def build_router(config: Any) -> Router:
    """A single-deployment entry is its own deployment, named as the model."""
    if isinstance(config, DeploymentsEntry):
        members = [(d.name, apply_timeouts(d, config.timeouts), d.weight) for d in config.deployments]
        strategy = config.routing
    else:
        members = [(config.name, apply_timeouts(config, config.timeouts), 1.0)]
        strategy = "ordered"
    deployments = [
        Deployment(name, build_provider(deployment), weight, config.cooldown)
        for name, deployment, weight in members
    ]
    return Router(
        config.name,
        deployments,
        strategy=strategy,
        retries=config.retries,
        cooldown=config.cooldown,
        timeouts=config.timeouts,
        owned_by=config.owned_by,
        failover=config.failover,
    )


def build_routers(configs: Sequence[Any], shared: SharedCooldowns | None = None) -> dict[str, Router]:
    """Every entry's router, linked to its fallbacks (named by model or alias)."""
    routers = {config.name: build_router(config) for config in configs}
    names = {alias: config.name for config in configs for alias in config.aliases}
    names.update({name: name for name in routers})
    for config in configs:
        fallbacks = [routers[names[fallback]] for fallback in config.fallbacks]
        routers[config.name].link(fallbacks, shared)
    return routers
