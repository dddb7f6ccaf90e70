"""The config sections governance reads: `database` and `governance` (and `redis`, in settings)."""

from __future__ import annotations

import os
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


def env_or_none(name: str) -> str | None:
    return os.environ.get(name) or None


class DatabaseConfig(BaseModel):
    """`postgresql://user@host:5432/db` (optionally `?schema=NAME`), or `sqlite:///path`;
    unset: SQLite in the data dir. The YAML wins over SLUICEGATE_DATABASE_URL."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(default_factory=lambda: env_or_none("SLUICEGATE_DATABASE_URL"))


class GovernanceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True  # limits, budgets and the ledger; keys are checked either way
    ledger_flush_s: float = Field(default=0.25, gt=0)  # the longest a record waits in memory
    ledger_batch: int = Field(default=500, ge=1)  # a batch this big is written at once
    ledger_buffer: int = Field(default=200_000, ge=1)  # records kept while the database is down
    reservation_ttl_s: float = Field(default=3600.0, gt=0)  # a reservation older is released
    # a budget lease (governance/leases.py) admits a busy key's requests in memory this long;
    # 0: every request reserves its own estimate in the database
    lease_s: float = Field(default=5.0, ge=0)
    # a slice of a busy key's Redis limits (governance/limit_slices.py) lasts this long at most;
    # 0: every request is checked in Redis
    limit_slice_s: float = Field(default=1.0, ge=0)
    # every admitted request's open row is committed before its upstream call, so a crash loses
    # none (governance/durable.py); false: no write on the request path, a crash loses those in flight
    durable_admission: bool = True
    heartbeat_s: float = Field(default=2.0, gt=0)  # each process's heartbeat in the store
    # a process silent this long is dead (its open requests are recorded as interrupted and its
    # reservations released); one on the same host whose PID is gone is dead at once
    instance_timeout_s: float = Field(default=15.0, gt=0)
    negative_cache: int = Field(default=10_000, ge=0)  # unknown secrets remembered, at most

    @model_validator(mode="before")
    @classmethod
    def _moved(cls, value: Any) -> Any:
        if isinstance(value, dict) and "reserve_completion_tokens" in value:
            raise ValueError(
                "`reserve_completion_tokens` is gone: a budget now reserves a request's max_tokens, else its"
                " model entry's `max_output_tokens` (default 32768); set that on the model entries"
            )
        return value

    @model_validator(mode="after")
    def _heartbeats_fit_the_timeout(self) -> GovernanceConfig:
        """A timeout within two heartbeats takes live processes for dead: their requests in flight
        would be billed as interrupted, and billed again when they settle elsewhere."""
        if self.durable_admission and self.instance_timeout_s <= 2 * self.heartbeat_s:
            raise ValueError(
                f"instance_timeout_s ({self.instance_timeout_s:g} s) must be more than twice heartbeat_s"
                f" ({self.heartbeat_s:g} s), or a live gateway process is taken for dead between two"
                " heartbeats; raise instance_timeout_s or lower heartbeat_s"
            )
        return self
