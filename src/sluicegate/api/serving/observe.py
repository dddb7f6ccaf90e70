"""What the hooks learn of an answer as it passes: first token, text, finish reason, usage,
the deployment that answered and any mid-stream seam."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator

from sluicegate.core.completion import Completion
from sluicegate.core.events import (
    Batch,
    Finish,
    PromptProgress,
    RawText,
    ReasoningDelta,
    RefusalDelta,
    Seam,
    Started,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from sluicegate.core.exchange import Exchange


def observe(exchange: Exchange, batch: Batch) -> None:
    """What the hooks need to know of a stream, noted as it passes: the first token's time,
    the text sent (to estimate usage when none comes), the finish reason, the usage."""
    for event in batch:
        kind = type(event)
        if kind is TextDelta or kind is ReasoningDelta or kind is RefusalDelta:
            if exchange.ttft_s is None:
                exchange.ttft_s = exchange.elapsed()
            if exchange.transcript is None:  # else the byte relay keeps the text (`Started.transcript`)
                exchange.output_parts.append(event.text)  # type: ignore[union-attr]
        elif kind is ToolCallDelta:
            if exchange.ttft_s is None:
                exchange.ttft_s = exchange.elapsed()
            if exchange.transcript is None:
                exchange.output_parts.append((event.name or "") + event.arguments)  # type: ignore[union-attr]
        elif kind is Finish:
            if event.choice == 0:  # type: ignore[union-attr]
                exchange.finish_reason = event.reason  # type: ignore[union-attr]
        elif kind is Usage:
            exchange.usage = event  # type: ignore[assignment]
        elif kind is RawText:
            if exchange.ttft_s is None:
                exchange.ttft_s = exchange.elapsed()
        elif kind is Started:
            _note_origin(exchange, event)  # type: ignore[arg-type]
        elif kind is PromptProgress:
            exchange.prompt_progress = (event.done, event.total)  # type: ignore[union-attr]
        elif kind is Seam:
            _note_seam(exchange, event)  # type: ignore[arg-type]


def _note_origin(exchange: Exchange, started: Started) -> None:
    exchange.committed = True
    if started.deployment:
        exchange.deployment = started.deployment
    if started.upstream_model:
        exchange.upstream_model = started.upstream_model
    if started.model:
        exchange.served_by = started.model  # a fallback's entry, when one answered
    exchange.attempts = started.attempts
    if started.prompt_tokens is not None:
        exchange.prompt_tokens_hint = started.prompt_tokens
    if started.transcript is not None:
        exchange.transcript = started.transcript


def _note_seam(exchange: Exchange, seam: Seam) -> None:
    """Another deployment continues the answer (mid-stream fail-over): the record names it,
    and keeps the seam for billing each side at its own price."""
    exchange.seams.append(seam)
    exchange.deployment = seam.to
    if seam.to_model:
        exchange.served_by = seam.to_model
    if seam.to_upstream_model:
        exchange.upstream_model = seam.to_upstream_model


async def noted(events: AsyncGenerator[Batch, None], exchange: Exchange) -> AsyncIterator[Batch]:
    """The stream's batches, each noted on the exchange as it passes (`observe`)."""
    try:
        async for batch in events:
            observe(exchange, batch)
            yield batch
    finally:
        await events.aclose()


def observe_completion(exchange: Exchange, completion: Completion) -> None:
    exchange.ttft_s = exchange.elapsed()
    if completion.origin is not None:
        _note_origin(exchange, completion.origin)
    exchange.usage = completion.usage
    if completion.choices:
        exchange.finish_reason = completion.choices[0].finish_reason
    for choice in completion.choices:
        exchange.output_parts.extend(
            part for part in (choice.reasoning, choice.content, choice.refusal) if part
        )
        exchange.output_parts.extend(call.name + call.arguments for call in choice.tool_calls)
