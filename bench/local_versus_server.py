"""Runs the concurrency and multi-turn scenarios on sluicegate's embedded model and on
llama-server (one server at a time, the same GGUF and settings) and writes the results."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench import litellm_env, llama_server
from bench.local_concurrency import Target, concurrency_round, multi_turn, short_under_load, warm
from bench.local_model import MODEL, find_gguf, start_gateway
from bench.processes import free_port, spawn, stop, wait_http_ok
from bench.scenarios import REPO_ROOT
from sluicegate.providers.local.model import SAMPLING_DEFAULTS


@contextmanager
def sluicegate(workdir: Path, args: argparse.Namespace, prefix_cache: bool = True) -> Iterator[Target]:
    entry = {
        "name": MODEL, "provider": "local", "n_ctx": args.n_ctx, "parallel": args.parallel,
        "prefix_cache": prefix_cache, "queue_size": 64,
    }
    if args.threads is not None:  # else sluicegate's own default, the one under test
        entry["n_threads"] = args.threads
    if getattr(args, "threads_batch", None) is not None:
        entry["n_threads_batch"] = args.threads_batch
    home = Path(tempfile.mkdtemp(prefix="sg-", dir=workdir))
    managed, base_url, key = start_gateway(home, {"models": [entry]})
    try:
        yield Target("sluicegate", base_url, {"Authorization": f"Bearer {key}"}, MODEL)
    finally:
        stop(managed)


@contextmanager
def server(workdir: Path, args: argparse.Namespace) -> Iterator[Target]:
    exe = llama_server.ensure_built()
    port = free_port()
    cmd = [
        str(exe), "-m", str(find_gguf()), "--host", "127.0.0.1", "--port", str(port),
        "-c", str(args.n_ctx), "--parallel", str(args.parallel), "-t", str(server_threads(args)),
        "-tb", str(getattr(args, "threads_batch", None) or server_threads(args)), "--kv-unified", "--no-webui",
    ]
    managed = spawn("llama-server", cmd, workdir / f"llama-server-{port}.log")
    try:
        wait_http_ok(f"http://127.0.0.1:{port}/health", managed, timeout_s=120)
        # the gateway's sampling defaults, named (llama-server's own differ)
        extra = {"repeat_penalty": SAMPLING_DEFAULTS["repeat_penalty"], "top_k": int(SAMPLING_DEFAULTS["top_k"])}
        yield Target("llama-server", f"http://127.0.0.1:{port}/v1", {}, MODEL, extra)
    finally:
        stop(managed)


def server_threads(args: argparse.Namespace) -> int:
    """llama-server's threads: those asked for, else every CPU (its own choice on an idle machine)."""
    return int(args.threads or os.cpu_count() or 1)


def commit() -> str:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                          cwd=REPO_ROOT, check=False).stdout.strip() or "unknown"


def measure_concurrency(target: Target, args: argparse.Namespace) -> dict[str, Any]:
    asyncio.run(warm(target))
    rounds = []
    for streams in (int(n) for n in args.streams.split(",")):
        # the round of median throughput of `--rounds` (one 128-token stream lasts ~1.5 s)
        tries = sorted(
            (asyncio.run(concurrency_round(target, streams, args.max_tokens)) for _ in range(args.rounds)),
            key=lambda r: float(r["aggregate_tokens_per_s"]),
        )
        result = {**tries[len(tries) // 2], "aggregate_tokens_per_s_rounds": [r["aggregate_tokens_per_s"] for r in tries]}
        print(f"  {target.name:<12} {streams:2d} streams: {result['aggregate_tokens_per_s']:6.1f} tok/s, ttft p50 "
              f"{result['ttft_ms_p50']:7.1f} ms p99 {result['ttft_ms_p99']:7.1f}, itl p50 {result['itl_ms_p50']:6.1f} "
              f"p99 {result['itl_ms_p99']:6.1f}", file=sys.stderr)
        rounds.append(result)
    loaded = asyncio.run(short_under_load(target))
    print(f"  {target.name:<12} short request: alone {loaded['lone_ttft_ms']:.0f} ms, beside 7 long "
          f"{loaded['under_7_long_ttft_ms']:.0f} ms ({loaded['ratio']:.2f}x)", file=sys.stderr)
    return {"rounds": rounds, "short_under_load": loaded}


def measure_turns(target: Target, args: argparse.Namespace, **fields: Any) -> dict[str, Any]:
    asyncio.run(warm(target))
    result = asyncio.run(multi_turn(target, 48, **fields))
    turns = ", ".join(f"{t:.0f}" for t in result["ttft_ms_by_turn"])
    print(f"  {target.name:<12} {fields or ''} ttft by turn (ms): {turns}", file=sys.stderr)
    return result


def run(args: argparse.Namespace, scenarios: set[str]) -> None:
    litellm_env.CACHE_DIR.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="versus-", dir=litellm_env.CACHE_DIR))
    anchor = not args.without_server
    if anchor:
        llama_server.ensure_built()  # before any measurement: the build takes both cores
    path = args.out / "local_concurrency.json"
    result: dict[str, Any] = {}
    if path.is_file() and not getattr(args, "fresh", False):  # scenarios run apart fill one report
        result = json.loads(path.read_text())
    load = os.getloadavg()[0]  # a shared machine's other work blurs every figure
    command = "python -m bench.local_model " + " ".join(sys.argv[1:])
    result.update({
        "commit": commit(), "gguf": find_gguf().name, "parallel": args.parallel, "threads": args.threads,
        "server_threads": server_threads(args), "n_ctx": args.n_ctx, "max_tokens": args.max_tokens,
        "temperature": 0.0,
    })
    runs = [run for run in result.get("runs", []) if not set(run["scenarios"]) <= scenarios]  # superseded
    result["runs"] = [*runs, {"scenarios": sorted(scenarios), "load_average_at_start": load, "command": command,
                              "commit": commit()}]
    if "concurrency" in scenarios:
        if anchor:
            with server(workdir, args) as target:
                result["llama_server"] = measure_concurrency(target, args)
        with sluicegate(workdir, args) as target:
            result["sluicegate"] = measure_concurrency(target, args)
    if "multiturn" in scenarios:
        turns: dict[str, Any] = {}
        if anchor:
            with server(workdir, args) as target:
                turns["llama_server_cached"] = measure_turns(target, args, cache_prompt=True)
                turns["llama_server_uncached"] = measure_turns(target, args, cache_prompt=False)
        with sluicegate(workdir, args) as target:
            turns["sluicegate_cached"] = measure_turns(target, args)
        with sluicegate(workdir, args, prefix_cache=False) as target:
            turns["sluicegate_uncached"] = measure_turns(target, args)
        result["multiturn"] = turns
    args.out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "local_concurrency.md").write_text(render(result))
    print(f"-> {args.out / 'local_concurrency.md'}", file=sys.stderr)


def render(result: dict[str, Any]) -> str:
    threads = result["threads"] if result.get("threads") is not None else "sluicegate's default"
    lines = [
        "# The embedded model beside llama-server",
        "",
        f"Latest commit `{result['commit']}`, {result['gguf']}, {result['parallel']} slots on both servers, sluicegate"
        f" threads: {threads}, llama-server `-t {result['server_threads']}`, context {result['n_ctx']},"
        f" {result['max_tokens']} tokens per answer, temperature 0, the gateway's sampling defaults on both.",
        "",
    ]
    for run in result.get("runs", []):
        lines.append(f"- `{run['command']}` ({', '.join(run['scenarios'])}) at commit `{run.get('commit', '?')}`:"
                     f" load average {run['load_average_at_start']:.2f} when it began")
    lines.append("")
    if "sluicegate" in result:
        lines += [
            "| streams | server | aggregate tok/s | TTFT p50 / p99 ms | inter-chunk p50 / p99 ms |",
            "|---:|---|---:|---:|---:|",
        ]
        servers = [("sluicegate", result["sluicegate"]["rounds"])]
        if "llama_server" in result:
            servers.append(("llama-server", result["llama_server"]["rounds"]))
        for index in range(len(servers[0][1])):
            for name, rounds in servers:
                row = rounds[index]
                lines.append(
                    f"| {row['streams']} | {name} | {row['aggregate_tokens_per_s']:.1f} | {row['ttft_ms_p50']:.0f} /"
                    f" {row['ttft_ms_p99']:.0f} | {row['itl_ms_p50']:.1f} / {row['itl_ms_p99']:.1f} |"
                )
        lines += ["", "| short requests (10 new questions each, medians) | alone ms | beside 7 long answers ms | ratio |", "|---|---:|---:|---:|"]
        for name in ("sluicegate", "llama_server"):
            if name not in result:
                continue
            row = result[name]["short_under_load"]
            lines.append(f"| {name} | {row['lone_ttft_ms']:.0f} | {row['under_7_long_ttft_ms']:.0f} | {row['ratio']:.2f} |")
        lines.append("")
    if "multiturn" in result:
        lines += ["| conversation (10 turns, ~1,000-token system prompt) | turn 1 TTFT ms | turn 10 TTFT ms |",
                  "|---|---:|---:|"]
        for name, row in result["multiturn"].items():
            lines.append(f"| {name} | {row['turn1_ttft_ms']:.0f} | {row['turn10_ttft_ms']:.0f} |")
        lines.append("")
    verdicts = targets(result)
    if verdicts:
        lines += ["| target (issue #23) | measured | met |", "|---|---|---|"]
        lines += [f"| {name} | {measured} | {'yes' if met else 'no'} |" for name, measured, met in verdicts]
        lines.append("")
    return "\n".join(lines)


def targets(result: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """The issue's targets, each with what was measured and whether it holds."""
    found: list[tuple[str, str, bool]] = []
    ours = {row["streams"]: row["aggregate_tokens_per_s"] for row in result.get("sluicegate", {}).get("rounds", [])}
    theirs = {row["streams"]: row["aggregate_tokens_per_s"] for row in result.get("llama_server", {}).get("rounds", [])}
    if 1 in ours and 1 in theirs:
        share = ours[1] / theirs[1]
        found.append(("one stream >= 90% of llama-server's tok/s", f"{100 * share:.0f}%", share >= 0.9))
    if 8 in ours and 1 in ours:
        gain = ours[8] / ours[1]
        found.append(("8 streams >= 1.4x one stream", f"{gain:.2f}x", gain >= 1.4))
    if 8 in ours and 8 in theirs:
        share = ours[8] / theirs[8]
        found.append(("8 streams >= 95% of llama-server's", f"{100 * share:.0f}%", share >= 0.95))
    if "sluicegate" in result:
        ratio = result["sluicegate"]["short_under_load"]["ratio"]
        found.append(("short request beside 7 long: TTFT within 3x of alone", f"{ratio:.2f}x", ratio <= 3.0))
    cached = result.get("multiturn", {}).get("sluicegate_cached")
    if cached:
        first, last = cached["turn1_ttft_ms"], cached["turn10_ttft_ms"]
        found.append(("turn 10 TTFT no slower than turn 1", f"{last:.0f} ms vs {first:.0f} ms", last <= first))
    return found
