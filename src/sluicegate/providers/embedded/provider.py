"""The `embedded` provider: sentence embeddings computed in the gateway's process.

A request's inputs go through the model in one forward pass, on one worker thread (the event
loop never blocks); at most `queue_size` more requests wait, beyond that a 429. It answers
only `/v1/embeddings`: a chat request naming it is a 400 that says so.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sluicegate.core.completion import Completion
from sluicegate.core.embeddings import EmbeddingRequest, Embeddings
from sluicegate.core.events import Batch, Started
from sluicegate.core.request import ChatRequest, WireFormat
from sluicegate.errors import InvalidRequestError, RateLimitError, ServiceUnavailableError
from sluicegate.providers.embedded.config import EmbeddedConfig
from sluicegate.providers.embedded.model import BUNDLED_TOKENIZER, EmbeddingModel, bundled_model_path

log = logging.getLogger("sluicegate.embedded")


class EmbeddedProvider:
    kind = "embedded"
    native_formats: frozenset[WireFormat] = frozenset()
    relay_formats: frozenset[WireFormat] = frozenset()
    continues_final = False
    mode = "embeddings"

    def __init__(self, config: EmbeddedConfig) -> None:
        self.config = config
        self.name = config.name
        self.owned_by = config.owned_by or "sluicegate"
        self.upstream_model = ""
        self._model: EmbeddingModel | None = None
        self._loading: asyncio.Future[EmbeddingModel] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"embed-{config.name}")
        self._admitted = 0

    async def start(self) -> None:
        path = Path(self.config.path) if self.config.path else bundled_model_path()
        tokenizer = Path(self.config.tokenizer) if self.config.tokenizer else BUNDLED_TOKENIZER
        for file in (path, tokenizer):
            if not file.is_file():
                raise ServiceUnavailableError(f"Embeddings model file not found: {file}")
        # Loaded on the worker thread while the gateway already serves (chat answers at once on
        # a fresh start); the first embeddings request waits for it, and a load that fails is
        # that request's 503 and a log line.
        loop = asyncio.get_running_loop()
        self._loading = loop.run_in_executor(
            self._executor, EmbeddingModel, path, tokenizer, self.config.max_input_tokens, self.config.n_threads
        )
        self._loading.add_done_callback(self._loaded_now)

    def _loaded_now(self, loading: asyncio.Future[EmbeddingModel]) -> None:
        if loading.cancelled():
            return
        error = loading.exception()
        if error is not None:
            log.error("the embeddings model `%s` did not load: %s", self.name, error)
        else:
            self._model = loading.result()

    async def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        if self._loading is not None and not self._loading.done():
            self._loading.cancel()

    @property
    def dimensions(self) -> int | None:
        return self._model.dimensions if self._model is not None else None

    async def embed(self, request: EmbeddingRequest) -> Embeddings:
        model = await self._loaded()
        if request.dimensions is not None and request.dimensions != model.dimensions:
            raise InvalidRequestError(
                f"The model `{self.name}` makes {model.dimensions}-dimensional vectors and cannot shorten"
                f" them: `dimensions` must be {model.dimensions} or left out.",
                param="dimensions",
            )
        if self._admitted > self.config.queue_size:
            raise RateLimitError(f"The model `{self.name}` has too many requests waiting.", retry_after=1)
        self._admitted += 1
        try:
            loop = asyncio.get_running_loop()
            vectors, tokens = await loop.run_in_executor(self._executor, self._run, model, request)
        finally:
            self._admitted -= 1
        return Embeddings(vectors, tokens, origin=Started())

    def _run(self, model: EmbeddingModel, request: EmbeddingRequest) -> tuple[list[list[float]], int]:
        batch: list[list[int]] = []
        if request.tokenized:
            for index, ids in enumerate(request.inputs):
                assert isinstance(ids, list)
                bad = next((i for i in ids if not 0 <= i < model.vocab_size), None)
                if bad is not None:
                    raise InvalidRequestError(
                        f"Token id {bad} in input[{index}] is outside the vocabulary of `{self.name}`"
                        f" (0 to {model.vocab_size - 1}).",
                        param="input",
                    )
                batch.append(model.wrap(ids))
        else:
            batch = model.tokenize([str(text) for text in request.inputs])
        vectors = model.embed(batch)
        return vectors.tolist(), sum(len(ids) for ids in batch)

    async def _loaded(self) -> EmbeddingModel:
        if self._model is not None:
            return self._model
        if self._loading is None:
            raise ServiceUnavailableError(f"The model `{self.name}` is not loaded.")
        try:
            return await asyncio.shield(self._loading)
        except Exception as exc:
            raise ServiceUnavailableError(f"The model `{self.name}` could not be loaded ({type(exc).__name__}).") from exc

    # --- a chat request naming an embeddings model ----------------------------------------

    def _not_chat(self) -> InvalidRequestError:
        return InvalidRequestError(
            f"The model `{self.name}` is an embeddings model: send it to /v1/embeddings.",
            code="model_not_chat",
            param="model",
        )

    async def stream(self, request: ChatRequest) -> AsyncGenerator[Batch, None]:
        raise self._not_chat()
        yield []  # an async generator, like every provider's stream

    async def complete(self, request: ChatRequest) -> Completion:
        raise self._not_chat()

    async def count_tokens(self, request: ChatRequest) -> int | None:
        return None
