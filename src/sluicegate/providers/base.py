"""What every provider offers the gateway.

A provider turns the canonical ChatRequest into its upstream's request and the upstream's
answer back into canonical events. It raises `GatewayError`s; whether that becomes an HTTP
error or a stream error event is decided by the front door, at the first-byte boundary.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Protocol

from sluicegate.core.completion import Completion
from sluicegate.core.events import Batch
from sluicegate.core.request import ChatRequest, WireFormat


class Provider(Protocol):
    kind: str  # local | openai | anthropic | gemini
    name: str  # the configured model entry
    owned_by: str
    # the wire formats whose client bodies it takes as they are (`ChatRequest.native_body`);
    # routing attaches the body only for these, so no provider knows which doors exist
    native_formats: frozenset[WireFormat]
    # the wire formats whose streamed answers it can pass on as the upstream's bytes
    # (`ChatRequest.byte_relay`); routing keeps the relay only for these
    relay_formats: frozenset[WireFormat]
    # it continues a trailing assistant message (`ChatRequest.continue_final`) rather than
    # answering after it: only such a provider may take over a failed answer mid-stream
    continues_final: bool

    async def start(self) -> None:
        """Acquire what the provider holds open (connection pools, loaded weights)."""

    async def close(self) -> None:
        """Release it; called once at shutdown."""

    def stream(self, request: ChatRequest) -> AsyncGenerator[Batch, None]:
        """Canonical events in batches as they arrive, `Started` first; closing the iterator
        cancels the upstream work."""
        ...

    async def complete(self, request: ChatRequest) -> Completion:
        """The whole answer at once."""
        ...

    async def count_tokens(self, request: ChatRequest) -> int | None:
        """The prompt's exact token count, where the provider can count it; else None."""
        ...
