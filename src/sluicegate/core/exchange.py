"""One request's journey through a front door, and the hooks that wrap every door alike.

Governance (limits, budgets, the usage ledger), metrics and the access log are hooks: `admit`
runs before the provider is called, while a failure can still be a plain HTTP error; `settle`
runs once after the last byte, whatever happened (success, upstream failure, client gone).
A request counts the same whichever door it came in by, because the doors share this path.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from sluicegate.core.events import Seam, Usage

if TYPE_CHECKING:
    from sluicegate.core.request import ChatRequest


@dataclass(slots=True)
class Exchange:
    request_id: str
    door: str  # "chat_completions" | "messages" | "responses"
    key_id: str | None = None  # the API key that authenticated the request
    key_name: str | None = None
    model: str = ""  # the name the client asked for
    request: ChatRequest | None = None
    provider: str = ""  # provider kind: local | openai | anthropic | gemini
    served_by: str = ""  # the configured model entry that answered
    upstream_model: str = ""
    deployment: str = ""
    attempts: int = 0
    # an upstream began an answer (its first batch, or a whole completion): until then nothing
    # was generated, so nothing is billed
    committed: bool = False
    stream: bool = False
    created: float = field(default_factory=time.time)  # wall clock, for records
    t0: float = field(default_factory=time.perf_counter)  # monotonic, for durations
    ttft_s: float | None = None  # first content (text, reasoning, tool call) reached the client
    total_s: float | None = None
    status: int = 200
    error_type: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    finish_reason: str | None = None
    usage: Usage | None = None
    # mid-stream fail-overs: where the answer passed from one deployment to the next, and
    # what each failed one used (governance bills each at its own price)
    seams: list[Seam] = field(default_factory=list)
    prompt_tokens_hint: int | None = None  # known before generation (local tokenizer)
    prompt_progress: tuple[int, int] | None = None  # (read, total) while a long prompt is read
    output_parts: list[str] = field(default_factory=list)  # text sent, to estimate usage when none came
    # a relayed answer's text, read back from its bytes when it is needed (`Started.transcript`)
    transcript: Callable[[], list[str]] | None = None
    client_gone: bool = False
    cache_hit: bool = False  # answered from the response cache: no provider was called
    admitted: bool = False  # reached the hooks' admit; then it is settled exactly once
    settled: bool = False
    response_headers: dict[str, str] = field(default_factory=dict)  # added to the answer's headers
    state: dict[str, Any] = field(default_factory=dict)  # per-hook scratch (a budget reservation...)

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def failed(self, status: int, error_type: str, code: str | None, message: str) -> None:
        self.status = status
        self.error_type = error_type
        self.error_code = code
        self.error_message = message


class ExchangeHook(Protocol):
    async def admit(self, exchange: Exchange) -> None:
        """Before the provider is called: raise a GatewayError to refuse the request."""

    async def settle(self, exchange: Exchange) -> None:
        """After the last byte, once for every exchange that reached `admit`, refused or not
        (a hook keeps in `exchange.state` what it must undo); must not raise."""
