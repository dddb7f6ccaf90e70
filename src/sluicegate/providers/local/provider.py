"""The `local` provider: the async side of the embedded model.

Generation runs on one worker thread per loaded model, so the event loop never blocks and
jobs run one at a time; at most `queue_size` more wait, and beyond that a request is turned
away with 429 and a Retry-After estimated from recent job durations. Tokens cross from the
thread to the loop through `call_soon_threadsafe`. Closing the event iterator (a client that
went away) sets the job's cancel flag, which the token loop checks before every token.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sluicegate.core.completion import Completion, collect
from sluicegate.core.events import Batch, Event
from sluicegate.core.request import ChatRequest
from sluicegate.errors import RateLimitError, ServiceUnavailableError
from sluicegate.providers.local.config import LocalConfig
from sluicegate.providers.local.logprobs import parse_logit_bias
from sluicegate.providers.local.model import Job, LocalModel, bundled_model_path
from sluicegate.providers.local.params import check_request
from sluicegate.providers.local.prompt import flatten_messages


class LocalProvider:
    kind = "local"

    def __init__(self, config: LocalConfig) -> None:
        self.config = config
        self.name = config.name
        self.owned_by = config.owned_by or "sluicegate"
        self._model: LocalModel | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"llama-{config.name}")
        self._admitted = 0
        self._mean_job_s = 2.0

    async def start(self) -> None:
        path = Path(self.config.path) if self.config.path else bundled_model_path()
        if not path.is_file():
            raise ServiceUnavailableError(f"Model file not found: {path}")
        loop = asyncio.get_running_loop()
        self._model = await loop.run_in_executor(
            self._executor, LocalModel, path, self.config.n_ctx, self.config.n_threads
        )

    async def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

    def _check_loaded(self) -> LocalModel:
        if self._model is None:
            raise ServiceUnavailableError(f"The model `{self.name}` is not loaded yet.", retry_after=1)
        return self._model

    def _check(self, request: ChatRequest) -> LocalModel:
        model = self._check_loaded()
        check_request(request, self.name)
        if self._admitted >= 1 + self.config.queue_size:
            raise RateLimitError(
                f"The model `{self.name}` is busy ({self._admitted} requests running or queued); retry later.",
                code="model_overloaded",
                retry_after=self._mean_job_s * self._admitted,
            )
        return model

    async def stream(self, request: ChatRequest) -> AsyncGenerator[Batch, None]:
        model = self._check(request)
        messages = flatten_messages(request.messages, self.name)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Event | BaseException | None] = asyncio.Queue()
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
            emit=lambda item: _call_soon(loop, queue, item),
            logprobs=request.logprobs,
            top_logprobs=request.top_logprobs or 0,
            logit_bias=parse_logit_bias(request.logit_bias, model.n_vocab),
        )
        self._admitted += 1
        started = time.monotonic()
        future = loop.run_in_executor(self._executor, model.run, job)
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
                    break
                if isinstance(item, BaseException):
                    raise item
        finally:
            job.cancelled.set()
            self._admitted -= 1
            if future.done():
                self._mean_job_s = 0.8 * self._mean_job_s + 0.2 * (time.monotonic() - started)

    async def complete(self, request: ChatRequest) -> Completion:
        return await collect(self.stream(request))

    async def count_tokens(self, request: ChatRequest) -> int | None:
        """Exact, from the model's own tokenizer and chat template."""
        model = self._check_loaded()
        messages = flatten_messages(request.messages, self.name)
        loop = asyncio.get_running_loop()
        tokens = await loop.run_in_executor(None, model.prompt_tokens, messages)
        return len(tokens)


def _call_soon(
    loop: asyncio.AbstractEventLoop,
    queue: asyncio.Queue[Event | BaseException | None],
    item: Event | BaseException | None,
) -> None:
    loop.call_soon_threadsafe(queue.put_nowait, item)
