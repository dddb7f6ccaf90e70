"""What resumable streams cost, and that the default stream costs what it did before.

One gateway process at a time (`sluicegate serve`, one worker) in front of the fault upstream
(`testsupport/fault_upstream.py`, `--chunks` content chunks per answer), sent `--streams`
streamed chat completions one after another; the gateway process's CPU (user + system) per
stream and the wall time per stream, median over `--rounds` interleaved rounds:

    before      the default stream, on the code this branch started from (`git archive` of the
                merge base with main, run from a temporary folder)
    default     the default stream, on this code (no event log is touched)
    memory      a resumable stream (`store: true`), its events in the process's log
    redis-off   the default stream, with Redis configured (what the Redis variant adds to)
    redis       a resumable stream, its events in Redis: also the Redis commands per stream
                (`INFO commandstats`, the server's own count)

    flock /work/bench.lock python -m bench.resume [--streams 200] [--chunks 200] [--rounds 3]

Results: bench/results/resume.md, with the command and the load average at the start.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from bench.processes import Managed, free_port, spawn, stop, wait_http_ok
from testsupport.fault_upstream import Fault, FaultUpstream

ROOT = Path(__file__).resolve().parents[1]
REDIS_URL = "redis://127.0.0.1:6379/0"
REDIS_COMMANDS = ("xadd", "pexpire", "xrange", "xread", "set", "get", "exists", "publish")


def base_tree(into: Path) -> tuple[Path, str]:
    """The `src/` of the commit this branch started from (merge base with main)."""
    base = subprocess.run(
        ["git", "-C", str(ROOT), "merge-base", "HEAD", "main"], capture_output=True, text=True, check=True
    ).stdout.strip()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", base, "src"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into / "src", base[:10]


def start(name: str, src: Path, data_dir: Path, upstream_url: str, redis_prefix: str | None) -> tuple[Managed, str, str]:
    data_dir.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {
        "server": {"metrics": False},
        "models": [{"name": "m", "provider": "openai", "base_url": upstream_url, "api_key": "k"}],
    }
    if redis_prefix is not None:
        config["redis"] = {"url": REDIS_URL, "prefix": redis_prefix}
    (data_dir / "config.yaml").write_text(yaml.safe_dump(config))
    env = {key: value for key, value in os.environ.items() if not key.startswith("SLUICEGATE_")}
    env["PYTHONPATH"] = str(src) + os.pathsep + str(ROOT)
    port = free_port()
    cmd = [sys.executable, "-m", "sluicegate.cli", "serve", "--port", str(port), "--data-dir", str(data_dir)]
    cmd += ["--config", str(data_dir / "config.yaml")]
    managed = spawn(name, cmd, data_dir / "server.log", env)
    base_url = f"http://127.0.0.1:{port}"
    wait_http_ok(base_url + "/health", managed, 60)
    return managed, base_url, create_key_with([sys.executable, "-m", "sluicegate.cli"], data_dir, env)


def create_key_with(cmd: list[str], data_dir: Path, env: dict[str, str]) -> str:
    created = subprocess.run(
        [*cmd, "keys", "create", "--name", "bench", "--data-dir", str(data_dir)],
        capture_output=True, text=True, timeout=120, check=True, env=env,
    )
    return [line.strip() for line in created.stdout.splitlines() if line.strip()][-1]


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of one process (all its threads), from /proc: the gateway runs
    as one process here (one worker)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def redis_calls() -> int:
    import redis

    stats = redis.Redis.from_url(REDIS_URL).info("commandstats")
    return sum(int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in REDIS_COMMANDS)


def run_streams(base_url: str, key: str, count: int, resumable: bool) -> None:
    body: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    if resumable:
        body["store"] = True
    with httpx.Client(base_url=base_url, headers={"authorization": f"Bearer {key}"}, timeout=60) as client:
        for _ in range(count):
            with client.stream("POST", "/v1/chat/completions", json=body) as response:
                data = response.read()
            assert response.status_code == 200 and data.endswith(b"data: [DONE]\n\n"), (response.status_code, data[-300:])


def measure(variant: dict[str, Any], streams: int) -> dict[str, float]:
    print(f"{variant['name']}: {streams} streams", flush=True)
    run_streams(variant["url"], variant["key"], 20, variant["resumable"])  # warm-up
    calls = redis_calls() if variant["redis"] else 0
    cpu = process_cpu_s(variant["managed"].pid)
    wall = time.perf_counter()
    run_streams(variant["url"], variant["key"], streams, variant["resumable"])
    wall = time.perf_counter() - wall
    cpu = process_cpu_s(variant["managed"].pid) - cpu
    out = {"cpu_ms": cpu / streams * 1000, "wall_ms": wall / streams * 1000}
    if variant["redis"]:
        out["redis_calls"] = (redis_calls() - calls) / streams
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--chunks", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    options = parser.parse_args()
    load = Path("/proc/loadavg").read_text().strip()
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short=10", "HEAD"], capture_output=True, text=True)
    options.commit = head.stdout.strip()
    work = Path(tempfile.mkdtemp(prefix="bench-resume-"))
    upstream = FaultUpstream().start()
    upstream.reset(Fault(chunks=options.chunks))
    before_src, base = base_tree(work)
    prefix = f"bench-resume-{os.getpid()}:"
    plans = [
        ("before", before_src, None, False),
        ("default", ROOT / "src", None, False),
        ("memory", ROOT / "src", None, True),
        ("redis-off", ROOT / "src", prefix, False),
        ("redis", ROOT / "src", prefix, True),
    ]
    variants: list[dict[str, Any]] = []
    results: dict[str, list[dict[str, float]]] = {name: [] for name, *_ in plans}
    try:
        for name, src, redis_prefix, resumable in plans:
            managed, url, key = start(name, src, work / name, upstream.base_url, redis_prefix)
            variants.append(
                {"name": name, "managed": managed, "url": url, "key": key, "resumable": resumable,
                 "redis": redis_prefix is not None}
            )
        for _ in range(options.rounds):
            for variant in variants:
                results[variant["name"]].append(measure(variant, options.streams))
    finally:
        for variant in variants:
            stop(variant["managed"])
        upstream.stop()
        shutil.rmtree(work, ignore_errors=True)
    report(options, load, base, results)


def report(options: argparse.Namespace, load: str, base: str, results: dict[str, list[dict[str, float]]]) -> None:
    def median(name: str, field: str) -> float:
        return statistics.median(round_[field] for round_ in results[name])

    lines = [
        "# Resumable streams: what they cost",
        "",
        f"Command: `flock /work/bench.lock python -m bench.resume --streams {options.streams}"
        f" --chunks {options.chunks} --rounds {options.rounds}`  ",
        f"Load average at the start: `{load}`  ",
        f"Measured: `{options.commit}` (and its working tree); baseline (`before`): the merge base `{base}`. One gateway process (one worker), streams one after"
        f" another, {options.chunks} content chunks each; medians over {options.rounds} interleaved rounds.",
        "",
        "| variant | gateway CPU per stream (ms) | wall per stream (ms) | Redis commands per stream |",
        "|---|---:|---:|---:|",
    ]
    for name in results:
        calls = f"{median(name, 'redis_calls'):.1f}" if "redis_calls" in results[name][0] else "-"
        lines.append(f"| {name} | {median(name, 'cpu_ms'):.2f} | {median(name, 'wall_ms'):.2f} | {calls} |")
    default, before = median("default", "cpu_ms"), median("before", "cpu_ms")
    lines += [
        "",
        f"Default path against before: {100 * (default / before - 1):+.1f}% CPU per stream.  ",
        f"Resumable, in memory: {median('memory', 'cpu_ms') - default:+.2f} ms CPU per stream;"
        f" in Redis: {median('redis', 'cpu_ms') - median('redis-off', 'cpu_ms'):+.2f} ms CPU and"
        f" {median('redis', 'redis_calls') - median('redis-off', 'redis_calls'):.1f} Redis commands per stream"
        " (the gateway's own CPU; the Redis server's is not counted).",
    ]
    text = "\n".join(lines) + "\n"
    options.out.mkdir(parents=True, exist_ok=True)
    (options.out / "resume.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
