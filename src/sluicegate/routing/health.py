"""Each deployment's health (a circuit breaker) and the counters the metrics read.

    closed ──(`failures` failures in a row)──> open ──(`seconds` pass)──> half-open
      ^                                                                      │
      └────────────── the probe's upstream commits to an answer ─────────────┤
                      the probe fails ──> open again ────────────────────────┘

A completed answer resets the count of failures; one request at a time probes a half-open
deployment. An upstream's Retry-After longer than the retry cap holds the deployment out for
that long too (`asked`). A deployment that is out is still the router's last resort: when every
deployment in service failed (or none is), it is tried once, soonest back first, rather than
giving up with it untried. A breaker routes around a bad deployment; it does not refuse traffic
nothing else could take. Everything here is plain attribute
access: the hot path pays nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from sluicegate.model_config.policies import CooldownPolicy

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"


@dataclass(slots=True)
class DeploymentStats:
    """Counters for one deployment since start (per process)."""

    attempts: int = 0  # upstream attempts sent to it (first tries, retries, fail-overs, fallbacks)
    failures: int = 0  # attempts that failed, before or after the upstream committed
    retries: int = 0  # attempts that repeated a failed attempt on it
    cooldowns: int = 0  # times it was taken out (its own failures, a Retry-After, another replica)
    in_flight: int = 0  # attempts under way (least-busy reads it)


@dataclass(slots=True)
class ModelStats:
    """Counters for one model entry since start (per process)."""

    requests: int = 0  # requests routed to this entry (not counting those it got as a fallback)
    failovers: int = 0  # moves to another deployment of the model after a failure
    fallbacks: int = 0  # moves to a fallback model after every deployment failed
    continued: int = 0  # answers another deployment continued after theirs failed mid-stream
    exhausted: int = 0  # requests that failed on every deployment and fallback


class Breaker:
    """The health of one deployment; `on_trip(until)` shares a trip (with other replicas)."""

    __slots__ = ("_probing", "asked", "failures", "on_trip", "open_until", "policy", "stats", "wall_until")

    def __init__(self, policy: CooldownPolicy, stats: DeploymentStats) -> None:
        self.policy = policy
        self.stats = stats
        self.failures = 0  # in a row
        self.open_until = 0.0  # monotonic; 0: closed
        self.wall_until = 0.0  # the same instant on the wall clock, for other replicas
        self._probing = False
        self.asked = False  # out because its upstream asked for a wait (Retry-After), not judged
        self.on_trip: Callable[[float, bool], None] | None = None

    @property
    def state(self) -> str:
        if not self.open_until:
            return CLOSED
        return OPEN if time.monotonic() < self.open_until else HALF_OPEN

    def remaining(self, now: float) -> float:
        """Seconds until it may be tried again (0 when it may be tried now)."""
        return max(0.0, self.open_until - now) if self.open_until else 0.0

    def acquire(self, now: float) -> bool:
        """May a request be sent to it now? In half-open, only one at a time (the probe)."""
        if not self.open_until:
            return True
        if now < self.open_until or self._probing:
            return False
        self._probing = True
        return True

    def release(self) -> None:
        """An attempt ended with no verdict (the client left): let another request probe."""
        self._probing = False

    def committed(self) -> None:
        """The upstream committed to an answer: a probe brings the deployment back in."""
        if self.open_until:
            self.close()

    def completed(self) -> None:
        self.failures = 0

    def close(self) -> None:
        self.open_until = self.wall_until = 0.0
        self._probing = self.asked = False
        self.failures = 0

    def failed(self, now: float) -> bool:
        """One failure; True when it takes the deployment out."""
        self.failures += 1
        if not self.policy.enabled:
            return False
        if self._probing or self.failures >= self.policy.failures:
            self.hold(now, self.policy.seconds)
            return True
        return False

    def hold(self, now: float, seconds: float, share: bool = True, asked: bool = False) -> None:
        """Take it out for `seconds`: a trip, or (`asked`) an upstream's long Retry-After."""
        until = now + seconds
        if until <= self.open_until:
            return
        was_open = self.open_until > now
        self.open_until = until
        self.wall_until = time.time() + seconds
        self.asked = asked or (was_open and self.asked)
        self._probing = False
        self.failures = 0
        if not was_open:
            self.stats.cooldowns += 1
        if share and self.on_trip is not None:
            self.on_trip(self.wall_until, self.asked)
