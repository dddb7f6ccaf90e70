"""The config fields every model entry has, whatever its provider, and those of HTTP upstreams.

Each provider's own entry (`providers/<name>/config.py`) extends one of these with a
`provider: Literal[...]` tag; `providers/catalog.py` joins them into one discriminated union.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from sluicegate.core.cache import CacheConfig
from sluicegate.model_config.policies import CooldownPolicy, FailoverPolicy, RetryPolicy, Timeouts

# the most one answer may write, when a model entry does not say (`max_output_tokens`)
DEFAULT_MAX_OUTPUT_TOKENS = 32_768


class Price(BaseModel):
    """USD per million tokens; `cached_input` defaults to `input`, `cache_write` too."""

    model_config = ConfigDict(extra="forbid")

    input: float = Field(default=0.0, ge=0)
    cached_input: float | None = Field(default=None, ge=0)
    cache_write: float | None = Field(default=None, ge=0)
    output: float = Field(default=0.0, ge=0)


class ModelEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str  # ends in `/*` to serve every model name with that prefix
    aliases: list[str] = Field(default_factory=list)  # more names clients may use for this model
    owned_by: str | None = None
    price: Price | None = None
    # what the model does, for `/v1/models` (an `embedded` entry is always `embeddings`)
    mode: Literal["chat", "embeddings"] = "chat"
    cache: CacheConfig | None = None  # the exact response cache, for this model's answers
    # the completion cap for requests that give none (providers that require one use it too)
    default_max_tokens: int | None = Field(default=None, ge=1)
    # OpenAI's hosted tools (web_search...) in a Responses request: left out (named in a header
    # and a log line) or refused with a 400
    hosted_tools: Literal["omit", "refuse"] = "omit"
    # the most one answer may write: a budget reserves this for a request without max_tokens
    max_output_tokens: int = Field(default=DEFAULT_MAX_OUTPUT_TOKENS, ge=1)
    # routing (model_config/policies.py): set on the model entry; a deployment in `deployments:`
    # takes only its `weight`, its share of the model's traffic
    weight: float = Field(default=1.0, gt=0)
    retries: RetryPolicy = Field(default_factory=RetryPolicy)
    fallbacks: list[str] = Field(default_factory=list)  # other models, tried when every deployment failed
    cooldown: CooldownPolicy = Field(default_factory=CooldownPolicy)
    timeouts: Timeouts = Field(default_factory=Timeouts)
    # every stream of this model is resumable (api/resumable.py), as if each request opted in
    resumable: bool = False
    # after the first token: continue the answer on the next deployment (`mid_stream: true`)
    failover: FailoverPolicy = Field(default_factory=FailoverPolicy)

    @property
    def is_wildcard(self) -> bool:
        return self.name.endswith("/*")


class HTTPModelEntry(ModelEntry):
    """An upstream reached over HTTP: where, with which credentials, and how patiently."""

    base_url: str
    api_key: str | None = None
    upstream_model: str | None = None  # defaults to the entry's name (for a wildcard, the rest of it)
    headers: dict[str, str] = Field(default_factory=dict)
    timeout_s: float = Field(default=600.0, gt=0)  # a whole non-streamed answer
    connect_timeout_s: float = Field(default=10.0, gt=0)
    read_timeout_s: float = Field(default=300.0, gt=0)  # the longest silence mid-answer
    # the longest wait for the upstream's status line (default: read_timeout_s)
    first_byte_timeout_s: float | None = Field(default=None, gt=0)
    max_connections: int = Field(default=1000, ge=1)  # open to the upstream at once (streams hold one each)
    # how long a request waits for one of them when all are busy, then a 503 (before its first byte)
    pool_timeout_s: float = Field(default=3.0, gt=0)

    @field_validator("base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")
