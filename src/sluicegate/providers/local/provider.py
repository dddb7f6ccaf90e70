"""The `local` provider: the async side of the embedded model.

Generation runs on one engine thread per loaded model (see `engine.py`), so the event loop
never blocks; up to `parallel` jobs generate together, at most `queue_size` more wait (taken
in turn per API key), and beyond that a request is turned away with 429 and a Retry-After:
the time until the longest-running job is likely done, by the measured generation time of
recent jobs (generation only: time spent queued is not the model's). Tokens cross from the
thread to the loop once per engine step (`handoff.Outbox`). Closing the event iterator (a client that
went away, the shutdown deadline) sets the job's cancel flag, which the engine checks before
every step; closing the provider cancels every job and waits for the thread without blocking
the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncGenerator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sluicegate.core.completion import Completion, collect
from sluicegate.core.events import Batch, Event, PromptProgress
from sluicegate.core.request import ChatRequest, WireFormat
from sluicegate.errors import RateLimitError, ServiceUnavailableError
from sluicegate.providers.local.config import LocalConfig
from sluicegate.providers.local.engine import Work
from sluicegate.providers.local.grammar import response_gbnf
from sluicegate.providers.local.handoff import Outboxes
from sluicegate.providers.local.logprobs import parse_logit_bias
from sluicegate.providers.local.model import Job, LocalModel, bundled_model_path
from sluicegate.providers.local.params import check_context, check_request
from sluicegate.providers.local.prompt import flatten_messages, with_tools
from sluicegate.providers.local.tools import plan_tools

log = logging.getLogger("sluicegate.local")
CLOSE_WAIT_S = 5.0  # the running job stops at its next token; this only bounds a stuck one


class ServiceTimes:
    """How long recent jobs took to generate (a moving average of finished, uncancelled jobs)."""

    def __init__(self, initial_s: float = 2.0) -> None:
        self.mean_s = initial_s
        self.count = 0

    def add(self, seconds: float) -> None:
        self.mean_s = seconds if self.count == 0 else 0.8 * self.mean_s + 0.2 * seconds
        self.count += 1

    def retry_after(self, running_for_s: float | None) -> float:
        """Seconds until a place in the queue frees: what the running job has left (at least 1)."""
        left = self.mean_s - running_for_s if running_for_s is not None else self.mean_s
        return max(1.0, left)


class LocalProvider:
    kind = "local"
    native_formats: frozenset[WireFormat] = frozenset({"openai_chat", "openai_completions"})  # checked as sent
    relay_formats: frozenset[WireFormat] = frozenset()
    continues_final = True  # the chat template rendered without closing the assistant's turn

    def __init__(self, config: LocalConfig) -> None:
        self.config = config
        self.name = config.name
        self.owned_by = config.owned_by or "sluicegate"
        self._model: LocalModel | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"llama-{config.name}")
        self._admitted = 0
        self._service = ServiceTimes()
        self._jobs: set[threading.Event] = set()  # cancel flags of admitted jobs
        self._futures: set[asyncio.Future[None]] = set()
        self._outboxes = Outboxes()
        self.on_queue: Callable[[int], None] | None = None  # metrics: requests waiting

    async def start(self) -> None:
        path = Path(self.config.path) if self.config.path else bundled_model_path()
        if not path.is_file():
            raise ServiceUnavailableError(f"Model file not found: {path}")
        loop = asyncio.get_running_loop()
        config = self.config
        model = await loop.run_in_executor(
            self._executor,
            LocalModel,
            path,
            config.n_ctx,
            config.n_threads,
            config.parallel,
            config.n_threads_batch,
            config.prefix_cache,
            config.llama_options(),
        )
        model.engine.flush = self._outboxes.flush
        self._model = model
        future = loop.run_in_executor(self._executor, model.engine.run)
        self._futures.add(future)
        future.add_done_callback(self._futures.discard)

    async def close(self) -> None:
        """Cancel every job (the running ones stop at their next token) and wait for the thread
        off the event loop, so closing never blocks the loop until a generation ends."""
        for cancelled in self._jobs:
            cancelled.set()
        if self._model is not None:
            self._model.engine.stop()
        self._executor.shutdown(wait=False, cancel_futures=True)
        running = {future for future in self._futures if not future.done()}
        if running:
            _, stuck = await asyncio.wait(running, timeout=CLOSE_WAIT_S)
            if stuck:
                log.warning("the model `%s` did not stop within %.0f s", self.name, CLOSE_WAIT_S)

    def _finished(
        self, job: Job, work: Work, emit: Callable[[Event | BaseException | None], None]
    ) -> Callable[[BaseException | None], None]:
        """What the engine calls when the job ends: its error if any, then the end; a job that
        ran to its end is timed for Retry-After."""

        def finish(error: BaseException | None) -> None:
            if error is not None:
                emit(error)
            elif not job.cancelled.is_set() and work.started is not None:
                self._service.add(time.monotonic() - work.started)
            emit(None)

        return finish

    def retry_after(self) -> float:
        since = self._model.engine.oldest_running_since() if self._model is not None else None
        return self._service.retry_after(None if since is None else time.monotonic() - since)

    def _queue_changed(self) -> None:
        if self.on_queue is not None:
            self.on_queue(max(0, self._admitted - self.config.parallel))

    def _check_loaded(self) -> LocalModel:
        if self._model is None:
            raise ServiceUnavailableError(f"The model `{self.name}` is not loaded yet.", retry_after=1)
        return self._model

    def _check(self, request: ChatRequest) -> LocalModel:
        model = self._check_loaded()
        check_request(request, self.name)
        self._check_room()
        return model

    def _check_room(self) -> None:
        """Asked again just before a job is counted in: the prompt's tokenizing awaits, and the
        requests that arrived meanwhile were all checked against the same count."""
        if self._admitted >= self.config.parallel + self.config.queue_size:
            raise RateLimitError(
                f"The model `{self.name}` is busy ({self._admitted} requests running or queued); retry later.",
                code="model_overloaded",
                retry_after=self.retry_after(),
            )

    async def stream(self, request: ChatRequest) -> AsyncGenerator[Batch, None]:
        model = self._check(request)
        plan = plan_tools(request)
        response_gbnf(request.response_format)  # a grammar that cannot be built: the 400 comes now
        messages = with_tools(flatten_messages(request.messages, self.name), plan)
        if request.continue_final and messages and messages[-1]["role"] == "assistant":
            messages[-1]["prefill"] = "true"  # model.prompt_tokens leaves its turn open
        loop = asyncio.get_running_loop()
        if request.prompts is None:  # a prompt over the context is refused at once, not in its turn
            prompt = await loop.run_in_executor(None, model.prompt_tokens, messages)
            check_context(len(prompt), model.n_ctx)
        queue: asyncio.Queue[Event | BaseException | None] = asyncio.Queue()
        outbox = self._outboxes.of(loop)

        def emit(item: Event | BaseException | None) -> None:
            outbox.put(queue, item)

        job = Job(
            messages=messages,
            max_tokens=request.max_tokens,
            temperature=request.temperature,
            top_p=request.top_p,
            frequency_penalty=request.frequency_penalty,
            presence_penalty=request.presence_penalty,
            stop=request.stop,
            seed=request.seed,
            n=request.n,
            response_format=request.response_format,
            emit=emit,
            logprobs=request.logprobs,
            top_logprobs=request.top_logprobs or 0,
            logit_bias=parse_logit_bias(request.logit_bias, model.n_vocab),
            tools=plan,
            prompts=request.prompts,
            echo=request.echo,
        )
        self._check_room()
        self._admitted += 1
        self._jobs.add(job.cancelled)
        self._queue_changed()
        work = Work(
            steps=model.steps(job),
            cancelled=job.cancelled,
            finish=lambda error: None,
            key=request.key_id or "",
            placed=lambda cached: setattr(job, "cached_tokens", cached),
            progress=lambda done, total: emit(PromptProgress(done, total)),
        )
        work.finish = self._finished(job, work, emit)
        model.engine.submit(work)
        ended = False
        try:
            while True:
                batch: Batch = []
                item = await queue.get()
                while True:  # take every token already waiting, not one per wake-up
                    if item is None or isinstance(item, BaseException):
                        break
                    batch.append(item)
                    if queue.empty():
                        break
                    item = queue.get_nowait()
                if batch:
                    yield batch
                if item is None:
                    ended = True
                    break
                if isinstance(item, BaseException):
                    raise item
        finally:
            if not ended:
                job.cancelled.set()  # the model stops at its next token (or never starts)
                model.engine.wake()
            self._jobs.discard(job.cancelled)
            self._admitted -= 1
            self._queue_changed()

    async def complete(self, request: ChatRequest) -> Completion:
        return await collect(self.stream(request))

    async def count_tokens(self, request: ChatRequest) -> int | None:
        """Exact, from the model's own tokenizer and chat template."""
        model = self._check_loaded()
        messages = with_tools(flatten_messages(request.messages, self.name), plan_tools(request))
        loop = asyncio.get_running_loop()
        tokens = await loop.run_in_executor(None, model.prompt_tokens, messages)
        return len(tokens)

    async def count_text_tokens(self, text: str) -> int | None:
        """Tokens of generated text, for the ledger when a stream ended before its usage."""
        model = self._check_loaded()
        tokens = await asyncio.get_running_loop().run_in_executor(None, model.text_tokens, text)
        return len(tokens)

