"""The model entries of the config: one deployment (a provider's own entry, as before) or a
model that lists `deployments:`, and the union the settings validate them with.

    - name: gpt-4o
      routing: least-busy            # weighted (default) | least-busy | ordered
      retries: {count: 2}
      fallbacks: [llama3]
      timeouts: {connect: 5, first_byte: 30, idle: 30}
      deployments:
        - {provider: openai, base_url: https://api.openai.com/v1, api_key: "${KEY}", weight: 3}
        - {name: azure-east, provider: openai, base_url: "...", upstream_model: gpt-4o-2024-08-06}

A deployment is a provider entry without the model-level fields; it is named `<model>#<n>`
unless it gives a `name`, and asks its upstream for the model's own name unless it gives an
`upstream_model`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any, Union

from pydantic import Discriminator, Field, Tag, model_validator

from sluicegate.model_config.entry import HTTPModelEntry, ModelEntry
from sluicegate.model_config.policies import TRANSPORT_TIMEOUTS, Strategy, Timeouts
from sluicegate.providers.catalog import PROVIDERS, ModelConfig

# the union branch of a model that lists deployments, as config errors name it in their path
DEPLOYMENTS_TAG = "model-with-deployments"
# set on the model, not on one of its deployments
MODEL_LEVEL = (
    "aliases",
    "retries",
    "fallbacks",
    "cooldown",
    "timeouts",
    "failover",
    "default_max_tokens",
    "max_output_tokens",
)


class DeploymentsEntry(ModelEntry):
    routing: Strategy = "weighted"
    deployments: list[ModelConfig] = Field(min_length=1)

    @property
    def provider(self) -> str:
        """The deployments' provider kind, or `mixed`."""
        kinds = {deployment.provider for deployment in self.deployments}
        return kinds.pop() if len(kinds) == 1 else "mixed"

    @model_validator(mode="before")
    @classmethod
    def _name_deployments(cls, value: Any) -> Any:
        if not isinstance(value, dict) or not isinstance(value.get("deployments"), list):
            return value
        model = value.get("name")
        named = []
        for n, deployment in enumerate(value["deployments"], start=1):
            if isinstance(deployment, dict) and "name" not in deployment:
                deployment = {"name": f"{model}#{n}", **deployment}
            named.append(deployment)
        return {**value, "deployments": named}

    @model_validator(mode="after")
    def _check(self) -> DeploymentsEntry:
        if "weight" in self.model_fields_set:
            raise ValueError("`weight` belongs to each of the deployments, not to the model")
        names: set[str] = set()
        deployments = []
        for deployment in self.deployments:
            misplaced = [f for f in MODEL_LEVEL if f in deployment.model_fields_set]
            if misplaced:
                raise ValueError(
                    f"deployment {deployment.name!r}: `{misplaced[0]}` belongs to the model entry, "
                    "not to one of its deployments"
                )
            if deployment.name in names:
                raise ValueError(f"deployment name {deployment.name!r} is used twice")
            names.add(deployment.name)
            if (
                isinstance(deployment, HTTPModelEntry)
                and deployment.upstream_model is None
                and not self.is_wildcard
            ):
                deployment = deployment.model_copy(update={"upstream_model": self.name})
            deployments.append(deployment)
        self.deployments = deployments
        if self.failover.mid_stream and not self.fallbacks and not any(map(_continues, deployments)):
            raise ValueError(
                "`failover.mid_stream` needs a deployment that can continue an answer: set"
                " `continue_final_message: true` on an OpenAI-compatible one served by vLLM or"
                " llama.cpp, or add an `anthropic` or `local` deployment"
            )
        return self


def _continues(deployment: Any) -> bool:
    """Whether a deployment's provider can continue an answer (its `continues_final`)."""
    return bool(getattr(deployment, "continue_final_message", deployment.provider in ("anthropic", "local")))


def _entry_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        if "deployments" in value:
            return DEPLOYMENTS_TAG
        provider = value.get("provider")
        return None if provider is None else str(provider)  # an unknown one is named in the error
    if isinstance(value, DeploymentsEntry):
        return DEPLOYMENTS_TAG
    provider = getattr(value, "provider", None)
    return provider if isinstance(provider, str) else None


if TYPE_CHECKING:
    ModelSpec = ModelConfig | DeploymentsEntry
else:
    _MEMBERS = (
        *(Annotated[spec.config, Tag(name)] for name, spec in PROVIDERS.items()),
        Annotated[DeploymentsEntry, Tag(DEPLOYMENTS_TAG)],
    )
    ModelSpec = Annotated[
        Union[_MEMBERS],  # noqa: UP007 (built from the catalog at run time)
        Discriminator(_entry_kind),
    ]


def deployments_of(entry: Any) -> list[Any]:
    """The provider entries behind a model entry: its deployments, or itself."""
    return list(entry.deployments) if isinstance(entry, DeploymentsEntry) else [entry]


def check_fallbacks(models: Sequence[ModelEntry]) -> None:
    """Every fallback names another configured model (or alias), not a wildcard entry."""
    known: dict[str, str] = {}
    for model in models:
        for name in (model.name, *model.aliases):
            known[name] = model.name
    for model in models:
        for fallback in model.fallbacks:
            target = known.get(fallback)
            if target is None:
                raise ValueError(f"model {model.name!r}: fallback {fallback!r} is not a configured model")
            if target == model.name:
                raise ValueError(f"model {model.name!r}: a model cannot be its own fallback")
            if target.endswith("/*"):
                raise ValueError(f"model {model.name!r}: fallback {fallback!r} is a wildcard entry")


def apply_timeouts(config: Any, timeouts: Timeouts) -> Any:
    """A deployment's config with the model's `timeouts` filled in where it sets none itself."""
    if not isinstance(config, HTTPModelEntry):
        return config
    update = {
        field: getattr(timeouts, key)
        for key, field in TRANSPORT_TIMEOUTS.items()
        if getattr(timeouts, key) is not None and field not in config.model_fields_set
    }
    return config.model_copy(update=update) if update else config
