"""How patiently a model entry is served: retries, cooldown (a circuit breaker per deployment)
and timeouts. Pure settings; `wiring/entry.py` puts them on the model entries.

Shorthands keep small configs small: `retries: 2` is `retries: {count: 2}`, `cooldown: false`
switches the breaker off.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Strategy = Literal["weighted", "least-busy", "ordered"]


class RetryPolicy(BaseModel):
    """Retries of one deployment after a failure that may pass (connect errors, timeouts, 429,
    5xx), before the model's next deployment is tried. Exponential backoff with jitter; an
    upstream's Retry-After is waited for when it is at most `retry_after_cap_s`, and beyond
    that the deployment is left for the next one."""

    model_config = ConfigDict(extra="forbid")

    count: int = Field(default=0, ge=0, le=10)
    backoff_base_s: float = Field(default=0.25, ge=0)
    backoff_cap_s: float = Field(default=4.0, ge=0)
    jitter: float = Field(default=0.5, ge=0, le=1)  # the share of each delay drawn at random
    retry_after_cap_s: float = Field(default=10.0, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _count_alone(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return {"count": value}
        return value

    def backoff(self, retry: int, draw: float) -> float:
        """The wait before retry number `retry` (0-based); `draw` is uniform in [0, 1)."""
        delay: float = min(self.backoff_cap_s, self.backoff_base_s * 2.0**retry)
        return delay * (1.0 - self.jitter * draw)


class CooldownPolicy(BaseModel):
    """A deployment that fails `failures` times in a row is taken out for `seconds`, then one
    request probes it: back in when the upstream commits to an answer, out again if not.
    Only where there is somewhere else to go (several deployments, or fallbacks)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    failures: int = Field(default=3, ge=1)
    seconds: float = Field(default=15.0, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _switch(cls, value: Any) -> Any:
        if isinstance(value, bool):
            return {"enabled": value}
        return value


class FailoverPolicy(BaseModel):
    """What happens when an upstream fails after its answer began. `mid_stream: true`: the
    next deployment that can continue an answer (routing/failover.py) is asked to continue
    this one, and its text joins the same response; off (the default), the client gets the
    text so far and an error event. `failover: true` is `failover: {mid_stream: true}`."""

    model_config = ConfigDict(extra="forbid")

    mid_stream: bool = False

    @model_validator(mode="before")
    @classmethod
    def _switch(cls, value: Any) -> Any:
        if isinstance(value, bool):
            return {"mid_stream": value}
        return value


class Timeouts(BaseModel):
    """Per model, in seconds. `connect` and `idle` (the longest silence between chunks) bound
    the HTTP transport; `first_byte` the wait until the upstream commits (its status, or the
    local model's queue); `total` the whole request, retries included. Unset: the deployment's
    own `connect_timeout_s` / `read_timeout_s` / `timeout_s`, and no first-byte or total bound
    for streams."""

    model_config = ConfigDict(extra="forbid")

    connect: float | None = Field(default=None, gt=0)
    first_byte: float | None = Field(default=None, gt=0)
    idle: float | None = Field(default=None, gt=0)
    total: float | None = Field(default=None, gt=0)


# model-level `timeouts` -> the HTTP deployment fields they set (unless a deployment sets its own)
TRANSPORT_TIMEOUTS = {
    "connect": "connect_timeout_s",
    "first_byte": "first_byte_timeout_s",
    "idle": "read_timeout_s",
    "total": "timeout_s",
}
