"""Continuous batching over one llama.cpp context: every active sequence advances in one
`llama_decode` per step.

Each job is a generator (see `model.LocalModel.steps`) that yields what it wants decoded
(`Generate`: a prompt, its sampling, its token budget) and receives each sampled token; the
engine does the rest on its one thread: a job takes a free slot (a sequence id in a KV cache
shared by all slots, so one request may still use the whole context), joins the batch at the
next step, has its prompt processed in chunks beside the others' tokens, and leaves at once
when it ends or its client goes. What a slot has decoded stays in the cache after the job
ends: the next job whose prompt starts the same way (a conversation's next turn, a shared
system prompt) reuses it, from its own slot or copied from another's (`llama_memory_seq_cp`).
Jobs beyond the slots wait in a `FairQueue`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from sluicegate.providers.local.fairqueue import FairQueue
from sluicegate.providers.local.sampler import Sampling, build_sampler

log = logging.getLogger("sluicegate.local")

# Prompt tokens decoded per step while other sequences generate: a long prompt then delays
# their next token by one such chunk (~0.5 s on 2 cores), not by the whole prompt. Alone, a
# prompt goes in batches of `BATCH_TOKENS`.
PROMPT_CHUNK = 128
BATCH_TOKENS = 512


@dataclass(slots=True)
class Generate:
    """Decode `tokens` (a whole prompt: the cached prefix is reused) then sample up to `limit`."""

    tokens: list[int]
    limit: int
    sampling: Sampling


@dataclass(slots=True)
class Sampled:
    token: int
    logits: npt.NDArray[np.single] | None = None


Steps = Generator[Generate | None, Sampled, None]


@dataclass(eq=False)
class Work:
    """A job as the engine sees it: its steps, cancel flag and where its end is reported."""

    steps: Steps
    cancelled: threading.Event
    finish: Callable[[BaseException | None], None]  # called once, on the engine thread
    key: str = ""
    placed: Callable[[int], None] | None = None  # told how many prompt tokens were found cached
    progress: Callable[[int, int], None] | None = None  # prompt tokens read so far, of how many
    started: float | None = None  # monotonic time it took a slot


@dataclass(eq=False)
class Slot:
    seq: int
    cached: list[int] = field(default_factory=list)  # tokens in this sequence's cells, in order
    work: Work | None = None
    generate: Generate | None = None
    sampler: Any = None
    feed: list[int] = field(default_factory=list)  # tokens to decode before the next sample
    used: float = 0.0
    fresh: bool = False  # its generation has no token yet


class Engine:
    """Owns the llama.cpp context; `run` is its thread. Everything else is thread-safe."""

    def __init__(
        self,
        model: Any,
        n_ctx: int,
        parallel: int,
        n_threads: int,
        n_threads_batch: int,
        prefix_cache: bool = True,
        options: dict[str, Any] | None = None,
    ) -> None:
        """`n_ctx` 0: the model's trained length. `options`: further llama.cpp context
        settings by their own names (RoPE scaling: `rope_freq_base`, `yarn_ext_factor`...)."""
        import llama_cpp

        self._ll = llama_cpp
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = n_ctx
        params.n_batch = BATCH_TOKENS
        params.n_ubatch = BATCH_TOKENS
        params.n_seq_max = parallel
        params.kv_unified = True  # one cache for all slots: any one request may fill the context
        params.n_threads = n_threads
        params.n_threads_batch = n_threads_batch
        params.no_perf = True
        for name, value in (options or {}).items():
            setattr(params, name, value)
        self._model = model  # keeps the weights alive as long as the context
        ctx = llama_cpp.llama_init_from_model(model.model, params)
        if not ctx:
            raise RuntimeError("llama.cpp could not create a context")
        self._ctx = ctx
        self._memory = llama_cpp.llama_get_memory(ctx)
        self._vocab = model.vocab
        self.n_vocab = int(llama_cpp.llama_vocab_n_tokens(self._vocab))
        self.n_ctx = int(llama_cpp.llama_n_ctx(ctx))
        self.parallel = parallel
        self.prefix_cache = prefix_cache
        self._batch = llama_cpp.llama_batch_init(BATCH_TOKENS, 0, 1)
        self._slots = [Slot(seq) for seq in range(parallel)]
        self._queue: FairQueue[Work] = FairQueue()
        self._lock = threading.Condition()
        self._stopping = False
        self._short_step = False  # the last step was short prompts alone
        self.flush: Callable[[], None] = _nothing  # hands what the jobs emitted to the event loop

    # -- called from other threads -------------------------------------------------------

    def submit(self, work: Work) -> None:
        with self._lock:
            self._queue.push(work.key, work)
            self._lock.notify()

    def wake(self) -> None:
        """A job was cancelled: let the loop see it even when it is idle."""
        with self._lock:
            self._lock.notify()

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            self._lock.notify()

    def threads(self) -> tuple[int, int]:
        """The threads llama.cpp computes with: (generation, prompts), as its context reports them."""
        return int(self._ll.llama_n_threads(self._ctx)), int(self._ll.llama_n_threads_batch(self._ctx))

    def oldest_running_since(self) -> float | None:
        starts = [s.work.started for s in self._slots if s.work is not None and s.work.started is not None]
        return min(starts) if starts else None

    # -- the engine thread -----------------------------------------------------------------

    def run(self) -> None:
        try:
            while True:
                self.flush()  # the last step's tokens and ends, before any wait
                with self._lock:
                    while not self._stopping and not self._active() and not len(self._queue):
                        self._lock.wait()
                    if self._stopping:
                        break
                    free = sum(1 for slot in self._slots if slot.work is None)
                    arrived = [self._queue.pop() for _ in range(min(free, len(self._queue)))]
                for work in arrived:  # outside the lock: a prompt's tokens and grammar take time
                    self._admit(work)
                self._drop_cancelled()
                if self._active():
                    self._step()
        finally:
            self._shutdown()

    def _active(self) -> bool:
        return any(slot.work is not None for slot in self._slots)

    def _admit(self, work: Work) -> None:
        """A job taken from the line gets the free slot whose cache it spoils least (the cells
        past the prefix they share), the least recently used of equals: a prefix another slot
        holds is shared from there (`_begin`), so taking the slot that holds a few template
        tokens of it would only throw a long cached prompt away. A cancelled job just ends."""
        if work.cancelled.is_set():
            self._end(work, None)
            return
        try:
            first = next(work.steps)
        except StopIteration:
            self._end(work, None)
            return
        except BaseException as exc:
            self._end(work, exc)
            return
        if first is None:
            self._end(work, RuntimeError("a job's first step must be a generation"))
            return
        free = [slot for slot in self._slots if slot.work is None]
        slot = min(free, key=lambda s: (len(s.cached) - _common(s.cached, first.tokens), s.used))
        slot.work = work
        work.started = time.monotonic()
        try:
            self._begin(slot, first)
        except BaseException as exc:
            self._leave(slot, exc, forget=True)
            return
        if work.placed is not None:
            work.placed(len(first.tokens) - len(slot.feed))

    def _begin(self, slot: Slot, generate: Generate) -> None:
        """Point the slot at a new generation, reusing the longest cached prefix of its prompt."""
        tokens = generate.tokens
        reuse = _common(slot.cached, tokens) if self.prefix_cache else 0
        donor = max(self._slots, key=lambda s: _common(s.cached, tokens))
        shared = _common(donor.cached, tokens) if self.prefix_cache else 0
        if shared > reuse:  # another slot holds more of it: share its cells
            self._ll.llama_memory_seq_rm(self._memory, slot.seq, -1, -1)
            self._ll.llama_memory_seq_cp(self._memory, donor.seq, slot.seq, 0, shared)
            slot.cached = tokens[:shared]
            reuse = shared
        reuse = min(reuse, len(tokens) - 1)  # the last prompt token is decoded again for its logits
        self._ll.llama_memory_seq_rm(self._memory, slot.seq, reuse, -1)
        del slot.cached[reuse:]
        slot.feed = tokens[reuse:]
        slot.fresh = True
        slot.generate = generate
        self._free_sampler(slot)
        slot.sampler = self._sampler(generate.sampling)

    def _drop_cancelled(self) -> None:
        for slot in self._slots:
            if slot.work is not None and slot.work.cancelled.is_set():
                self._leave(slot, None, forget=True)

    def _step(self) -> None:
        """One decode for every active slot: a token each for those generating, prompt chunks
        for the others, then a sample for each slot whose input is all in."""
        ll, batch = self._ll, self._batch
        generating = any(
            slot.work is not None and len(slot.feed) == 1 and not slot.fresh for slot in self._slots
        )
        # A short prompt (one chunk) goes in a step of its own, every other step at most: its
        # first token then waits for one small decode, not for one beside every answer's token,
        # and the answers lose one short step.
        short = {  # a generation's first input, a wholly cached prompt's last token as well
            slot.seq
            for slot in self._slots
            if slot.work is not None and slot.fresh and 0 < len(slot.feed) <= PROMPT_CHUNK
        }
        only_short = generating and bool(short) and not self._short_step
        self._short_step = only_short
        prompt_room = PROMPT_CHUNK if generating and not only_short else BATCH_TOKENS
        outputs: list[tuple[Slot, int]] = []
        reading: list[tuple[Callable[[int, int], None], int, int]] = []  # long prompts part-read
        n = 0
        for slot in self._slots:
            if slot.work is None or not slot.feed or (only_short and slot.seq not in short):
                continue
            take = len(slot.feed) if len(slot.feed) == 1 else min(len(slot.feed), prompt_room)
            take = min(take, BATCH_TOKENS - n)
            if take <= 0:
                continue
            if len(slot.feed) > 1:
                prompt_room -= take
            start = len(slot.cached)
            for offset in range(take):
                batch.token[n] = slot.feed[offset]
                batch.pos[n] = start + offset
                batch.n_seq_id[n] = 1
                batch.seq_id[n][0] = slot.seq
                batch.logits[n] = take == len(slot.feed) and offset == take - 1
                n += 1
            if take == len(slot.feed):
                outputs.append((slot, n - 1))
            slot.cached.extend(slot.feed[:take])
            del slot.feed[:take]
            if slot.feed and slot.work.progress is not None and slot.generate is not None:
                reading.append((slot.work.progress, len(slot.cached), len(slot.generate.tokens)))
        if n == 0:
            return
        batch.n_tokens = n
        self.flush()  # the event loop sends what is ready while llama.cpp computes without the GIL
        status = ll.llama_decode(self._ctx, batch)
        while status == 1 and self._evict_idle():
            status = ll.llama_decode(self._ctx, batch)
        if status != 0:
            self._decode_failed(status)
            return
        for report, done, total in reading:
            report(done, total)
        now = time.monotonic()
        for slot, index in outputs:
            slot.used, slot.fresh = now, False
            self._sample(slot, index)

    def _sample(self, slot: Slot, index: int) -> None:
        work, generate = slot.work, slot.generate
        assert work is not None and generate is not None
        if work.cancelled.is_set():
            self._leave(slot, None, forget=True)
            return
        token = int(self._ll.llama_sampler_sample(slot.sampler, self._ctx, index))
        logits = None
        if generate.sampling.logprobs:
            raw = self._ll.llama_get_logits_ith(self._ctx, index)
            logits = np.ctypeslib.as_array(raw, shape=(self.n_vocab,)).copy()
            bias = generate.sampling.logit_bias
            if bias:
                logits[np.array(list(bias), dtype=np.intc)] += np.array(list(bias.values()), dtype=np.single)
        try:
            wanted = work.steps.send(Sampled(token, logits))
        except StopIteration:
            self._leave(slot, None)
            return
        except BaseException as exc:
            self._leave(slot, exc)
            return
        if wanted is None:
            slot.feed = [token]
            return
        try:
            self._begin(slot, wanted)
        except BaseException as exc:
            self._leave(slot, exc, forget=True)

    def _leave(self, slot: Slot, error: BaseException | None, forget: bool = False) -> None:
        """The job ends; its slot is free at once. A cancelled job's cells are freed; a finished
        job's stay as a cache for the next prompt that starts the same way."""
        work = slot.work
        slot.work, slot.generate, slot.feed = None, None, []
        self._free_sampler(slot)
        if forget:
            self._ll.llama_memory_seq_rm(self._memory, slot.seq, -1, -1)
            slot.cached = []
        if work is not None:
            work.steps.close()
            self._end(work, error)

    def _end(self, work: Work, error: BaseException | None) -> None:
        try:
            work.finish(error)
        except Exception:  # a reporting failure must not stop the other sequences
            log.exception("reporting the end of a local job failed")

    def _evict_idle(self) -> bool:
        """The cache is full: drop the least recently used idle slot's cells. False: none left."""
        idle = [slot for slot in self._slots if slot.work is None and slot.cached]
        if not idle:
            return False
        victim = min(idle, key=lambda slot: slot.used)
        self._ll.llama_memory_seq_rm(self._memory, victim.seq, -1, -1)
        victim.cached = []
        return True

    def _decode_failed(self, status: int) -> None:
        """Nothing else fits (every cell is held by running jobs): the youngest job fails with a
        clear error, and its cells let the others go on."""
        from sluicegate.errors import ServiceUnavailableError

        running = [slot for slot in self._slots if slot.work is not None]
        for slot in running:  # what this step put in the cache did not go in
            if slot.generate is not None:
                self._resync(slot)
        youngest = max(running, key=lambda slot: slot.work.started or 0.0 if slot.work else 0.0)
        self._leave(
            youngest,
            ServiceUnavailableError(
                f"The embedded model's context ({self.n_ctx} tokens, shared by {self.parallel} slots) is full"
                f" (llama_decode returned {status}); retry later.",
                retry_after=1,
            ),
            forget=True,
        )

    def _resync(self, slot: Slot) -> None:
        """Make the slot's bookkeeping follow what its cells really hold after a failed decode."""
        last = int(self._ll.llama_memory_seq_pos_max(self._memory, slot.seq))
        held = last + 1 if last >= 0 else 0
        lost = slot.cached[held:]
        del slot.cached[held:]
        slot.feed[:0] = lost

    def _sampler(self, sampling: Sampling) -> Any:
        return build_sampler(self._ll, self._vocab, self.n_vocab, sampling)

    def _free_sampler(self, slot: Slot) -> None:
        if slot.sampler is not None:
            self._ll.llama_sampler_free(slot.sampler)
            slot.sampler = None

    def _shutdown(self) -> None:
        """Every running and waiting job ends (their clients see the stream close); the
        context is freed."""
        for slot in self._slots:
            if slot.work is not None:
                self._leave(slot, None, forget=True)
        with self._lock:
            waiting = self._queue.drain()
        for work in waiting:
            self._end(work, None)
        self.flush()
        self._ll.llama_batch_free(self._batch)
        self._ll.llama_free(self._ctx)


def _nothing() -> None:
    pass


def _common(a: list[int], b: list[int]) -> int:
    """The length of the common prefix of two token lists."""
    limit = min(len(a), len(b))
    i = 0
    while i < limit and a[i] == b[i]:
        i += 1
    return i
