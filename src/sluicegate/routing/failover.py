"""Mid-stream fail-over: an upstream that dies after its answer began is replaced by the next
deployment that can continue an answer, and the client gets one answer.

The continuation is asked for the same prompt with the text sent so far as the start of the
assistant's message (`ChatRequest.continue_final`: prefill on Anthropic, the chat template
left open on the embedded model, `continue_final_message` on vLLM and llama.cpp servers); a
provider that cannot continue (`continues_final` false: hosted OpenAI, Gemini) is not a
target. Targets are the entry's other deployments, then its fallbacks' the key may use, each
once per answer; before one commits, each is retried as the entry's retries allow.

What the client sees stays one answer in its door's format: the continuation's `Started` and
metadata are dropped (no second role chunk), whitespace doubled at the seam is dropped, its
usage is summed with what the failed ones used, and a `Seam` event tells the door and the
ledger where the join is. Tool calls are held back until their answer ends (its `Finish`):
a call cut mid-way was never seen by the client, so the continuation restarts it and the
client's stream accumulator gets each call once, whole (what follows a call in the answer waits
with it, to keep its order). Text before the first call is never delayed.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Any

from sluicegate.core.events import (
    Batch,
    BlockEnd,
    Event,
    Finish,
    LastBatch,
    Metadata,
    Passthrough,
    ReasoningDelta,
    RefusalDelta,
    Seam,
    Started,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from sluicegate.core.request import ChatRequest
from sluicegate.errors import GatewayError
from sluicegate.routing.attempt import Deployment, Opened, Run, Stream, Verdict, open_stream, verdict

if TYPE_CHECKING:
    from sluicegate.routing.router import Router

log = logging.getLogger("sluicegate.routing")
# what follows a tool call in the answer waits with it for the Finish (the order a door's blocks keep)
_HELD = frozenset({TextDelta, ToolCallDelta, ReasoningDelta, RefusalDelta, BlockEnd, Passthrough})


class Splice:
    """One answer across the deployments that wrote it: what the client has been sent, what
    is held back, and what each failed deployment used."""

    def __init__(self, request: ChatRequest) -> None:
        self.origin = request  # as the client asked
        self.request = request  # as the current deployment got it
        self.text: list[str] = []  # the answer's text sent to the client
        self.held: list[Event] = []  # tool calls (and what follows them) until the Finish
        self.seams: list[Seam] = []
        self.tried: set[tuple[str, str]] = set()  # (model entry, deployment) that wrote part of it
        self.started = Started()  # the current deployment's
        self.reported: Usage | None = None  # usage the current deployment sent before it failed
        self.chars = 0  # characters the current deployment wrote
        self.finished = False  # the answer's Finish went out
        self.joining = False  # the first text after a seam: whitespace doubled at it goes

    # --- the events of the current deployment ----------------------------------------------

    def take(self, batch: Batch) -> Batch:
        """The batch as the client gets it."""
        out: list[Event] = []
        for event in batch:
            kind = type(event)
            if kind is Started:
                self.started = event  # type: ignore[assignment]
                if self.seams:
                    continue  # the client's answer has begun already
            elif kind is Metadata and self.seams:
                continue  # the first deployment's fingerprint stays the answer's
            elif self.held and kind in _HELD:
                self.chars += len(getattr(event, "text", "") or getattr(event, "arguments", ""))
                self.held.append(event)  # after a call: kept in order behind it
                continue
            elif kind is TextDelta:
                text: TextDelta = event  # type: ignore[assignment]
                self.chars += len(text.text)
                if self.joining and text.text:
                    text = self._joined(text)
                    if not text.text:
                        continue
                    event = text
                self.text.append(text.text)
            elif kind is ToolCallDelta:
                self.chars += len(event.arguments) + len(event.name or "")  # type: ignore[union-attr]
                self.held.append(event)
                continue
            elif kind is Finish:
                out.extend(self.held)
                self.held.clear()
                self.finished = True
            elif kind is Usage:
                self.reported = event  # type: ignore[assignment]
                if self.seams:
                    event = self._summed(event)  # type: ignore[arg-type]
            out.append(event)
        return LastBatch(out) if type(batch) is LastBatch else out

    def flush(self) -> Batch:
        """What is still held when the answer ended without a Finish."""
        held, self.held = self.held, []
        return held

    def _joined(self, text: TextDelta) -> TextDelta:
        self.joining = False
        sent = "".join(self.text[-1:])
        if sent[-1:].isspace():
            stripped = text.text.lstrip()
            return replace(text, text=stripped) if stripped != text.text else text
        return text

    def _summed(self, usage: Usage) -> Usage:
        """The continuation's usage plus what the failed deployments used."""
        return Usage(
            prompt_tokens=usage.prompt_tokens + sum(s.usage.prompt_tokens for s in self.seams),
            completion_tokens=usage.completion_tokens + sum(s.usage.completion_tokens for s in self.seams),
            details=usage.details,
            cached_tokens=usage.cached_tokens,
            cache_creation_tokens=usage.cache_creation_tokens,
            reasoning_tokens=usage.reasoning_tokens,
            estimated=True,
        )

    # --- a seam ------------------------------------------------------------------------------

    def continuation(self) -> ChatRequest:
        """The request that asks for the rest of the answer: the prompt, and the text so far as
        the assistant's message to continue."""
        original = self.origin
        prefill = "".join(self.text)
        messages = list(original.messages)
        last = messages[-1] if messages else {}
        if last.get("role") == "assistant" and not last.get("tool_calls"):
            # the client's own prefill (Anthropic's door): the answer continues it
            content = last.get("content")
            if isinstance(content, list):
                messages[-1] = {**last, "content": [*content, {"type": "text", "text": prefill}]}
            else:
                messages[-1] = {**last, "content": str(content or "") + prefill}
        else:
            messages.append({"role": "assistant", "content": prefill})
        max_tokens = original.max_tokens
        if max_tokens is not None:
            written = sum(seam.usage.completion_tokens for seam in self.seams) + math.ceil(self.chars / 4)
            max_tokens = max(1, max_tokens - written)
        return replace(original, messages=messages, continue_final=True, native_body=None, max_tokens=max_tokens)

    def seam(self, error: GatewayError, to: Started) -> Seam:
        """The join between the deployment that failed and `to`, with what the failed one used."""
        started = self.started
        completion = math.ceil(self.chars / 4)
        if self.reported is not None:
            usage = replace(self.reported, completion_tokens=max(self.reported.completion_tokens, completion))
        else:
            prompt = started.prompt_tokens
            if prompt is None:
                prompt = prompt_estimate(self.request.messages)
            usage = Usage(prompt, completion, estimated=True)
        calls = {event.index for event in self.held if type(event) is ToolCallDelta}
        return Seam(
            offset=sum(len(part) for part in self.text),
            deployment=started.deployment or "",
            to=to.deployment or "",
            usage=usage,
            model=started.model,
            to_model=to.model,
            upstream_model=started.upstream_model,
            to_upstream_model=to.upstream_model,
            restarted_calls=len(calls),
            reason=error.message,
        )

    def begin(self, seam: Seam, request: ChatRequest, to: Started) -> None:
        """The continuation is now the current deployment."""
        self.seams.append(seam)
        self.request = request
        self.started = to
        self.held.clear()  # restarted by the continuation
        self.reported = None
        self.chars = 0
        self.joining = True


def prompt_estimate(messages: list[dict[str, Any]]) -> int:
    """A failed deployment's prompt, when it died before saying: a quarter token per character
    of the messages' text, three per message (governance corrects nothing here: it is what the
    ledger bills that deployment for)."""
    chars = 0
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            chars += sum(len(str(part.get("text") or "")) for part in content if isinstance(part, dict))
        for call in message.get("tool_calls") or ():
            function = call.get("function") or {} if isinstance(call, dict) else {}
            chars += len(str(function.get("name") or "")) + len(str(function.get("arguments") or ""))
    return math.ceil(chars / 4) + 3 * (len(messages) + 1)


async def relay(router: Router, request: ChatRequest, deadline: float | None) -> Stream:
    """The entry's stream, continued on another deployment whenever one fails mid-answer."""

    splice = Splice(request)
    segment = router.follow(lambda: router._attempts(request, deadline, open_stream, True), deadline)
    try:
        while True:
            try:
                async for batch in segment:
                    out = splice.take(batch)
                    if out:
                        yield out
                rest = splice.flush()
                if rest:
                    yield rest
                return
            except GatewayError as error:
                failed = _current(router, splice)
                if splice.finished:
                    # the answer was whole; only its usage or terminator was lost
                    log.warning("model %s: the answer ended before its upstream failed: %s", router.name, error.message)
                    rest = splice.flush()
                    if rest:
                        yield rest
                    return
                if failed is None or not _may_continue(error):
                    raise  # before any answer began (a plain HTTP error), or the request's own fault
                splice.tried.add(failed)
                opened = await _continue(router, splice, deadline, error)
                if opened is None:
                    raise error
                await segment.aclose()
                segment, first = opened
                yield first
    finally:
        await segment.aclose()


def _current(router: Router, splice: Splice) -> tuple[str, str] | None:
    started = splice.started
    if started.deployment is None:
        return None
    return (started.model or router.name, started.deployment)


def _may_continue(error: GatewayError) -> bool:

    return verdict(error) is not Verdict.FINAL  # the client's own fault is the same everywhere


async def _continue(
    router: Router, splice: Splice, deadline: float | None, error: GatewayError
) -> tuple[Stream, Batch] | None:
    """The next deployment that continues the answer, committed: its stream and the first
    batch the client gets of it (the seam, then its first events); None when none would."""

    request = splice.continuation()
    failed = splice.started
    for owner, deployment in _targets(router, splice):
        routed = request if owner is router else replace(request, upstream_model=None)
        run: Run[tuple[Stream, Batch]] = Run(open_stream, deadline, True)
        if owner._breaking and not deployment.breaker.acquire(time.monotonic()):
            continue
        try:
            done = await owner._try(deployment, routed, run, owner.retries.count, acquired=True)
        except GatewayError as refused:  # this one refuses the request itself: the next may not
            log.warning("model %s: %s cannot continue the answer: %s", router.name, deployment.name, refused.message)
            continue
        if done is None:
            continue
        (inner, first), tried = done[0], run.tried
        opened: Opened = ((inner, first), deployment, tried)
        stream = router.follow(partial(_ready, opened), deadline)
        try:
            batch = await stream.__anext__()
        except BaseException:
            await stream.aclose()
            raise
        to = next((e for e in batch if type(e) is Started), Started(deployment=deployment.name))
        seam = splice.seam(error, to)
        splice.begin(seam, routed, to)
        splice.tried.add((to.model or owner.name, deployment.name))
        router.stats.continued += 1
        log.warning(
            "model %s: %s failed mid-answer after %d characters; %s continues it",
            router.name,
            seam.deployment,
            seam.offset,
            deployment.name,
        )
        return stream, [seam, *splice.take(batch)]
    log.warning("model %s: no deployment can continue the answer %s left", router.name, failed.deployment)
    return None


async def _ready(opened: Opened) -> Opened:
    return opened


def _targets(router: Router, splice: Splice) -> Iterator[tuple[Router, Deployment]]:
    """Who may continue: the entry's deployments, then its fallbacks' that the key may use;
    each that has not written part of this answer and can continue one."""
    may_use = splice.request.may_use
    for owner in (router, *router.fallbacks):
        if owner is not router and may_use is not None and not may_use(owner.name):
            log.info("model %s: fallback %s may not continue the answer: the key may not use it", router.name, owner.name)
            continue
        for deployment in owner.order():
            if (owner.name, deployment.name) in splice.tried:
                continue
            if not getattr(deployment.provider, "continues_final", False):
                log.info(
                    "model %s: %s cannot continue an answer (its provider has no prefill)", router.name, deployment.name
                )
                continue
            yield owner, deployment
