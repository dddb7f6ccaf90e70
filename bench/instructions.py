"""``python -m bench.instructions``: user-space instructions per proxied short stream, counted by
valgrind's callgrind: the hop's cost in a unit a shared machine cannot blur.

``bench.hop`` divides CPU seconds by streams; on a machine shared with other tenants one window
moves by 10-30% against the next. An instruction count barely does: the same build and load
give the same count within about 1.5% from run to run, whatever else the machine is doing. It
counts the server's own user-space work (interpreter, C extensions, libc), not the kernel's
(socket writes, wake-ups), so it complements CPU time rather than replacing it.

Each target runs twice under callgrind (one process, one worker), serving ``--streams-low`` and
then ``--streams`` short streams (``mock-c20-t0``: 20 chunks, usage, 24 events) from a client
keeping ``--concurrency`` in flight; instructions per stream = (I(high) - I(low)) / (high - low),
so start-up, warm-up and shutdown cancel out. Targets: ``mock`` (the upstream itself), ``bare``
(bench/bare_proxy.py, the floor of a Python hop), ``sluicegate``, and ``sluicegate-base`` with
``--baseline-src`` (another build's ``src``). Needs Debian's ``valgrind``.

``--governance off|sqlite|postgres`` runs every sluicegate target with governance off, or on with
that store (PostgreSQL + Redis on 127.0.0.1) and a key with a budget and both rate limits set too
high to refuse: every stream then takes the whole admission path and writes a ledger row. Two
runs, off and on, give what governance adds per stream in instructions (``bench.governance``'s
capacity drop, in a unit the machine's speed cannot move). Left out, the targets run as
configured by default (governance on, a key without rules).

Under callgrind a stream takes about 190 times as long (some 10 streams a second against 1,900
at full speed), so the default 2 s heartbeat of durable admission (the journal's `fdatasync`, a
database round trip, a look at the other processes) would be charged to 190 times fewer streams
than at full speed: 27 k instructions per stream on 2026-12-08, where full speed spreads it to
about 0.15 k. Governance runs therefore use ``--heartbeat-s`` (default 600: no heartbeat falls in
the counted runs); ``--heartbeat-s 2`` counts it at callgrind's speed.

``--count writes`` counts the other half the same way: each server's writes to its TCP sockets
(``write``, ``writev``, ``sendto``, ``sendmsg`` to the client and to the upstream), traced by
``strace -f``; per stream, by the same difference. Writes to files, pipes and the loop's
eventfd are left out: log lines are written per loop turn and threads wake the loop, so their
number follows timing, not the streams. Which descriptor is a TCP socket is followed through the
trace (``bench.socket_writes``). Needs Debian's ``strace``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import aiohttp
import yaml

from bench.governance import drop_schema
from bench.processes import free_port, spawn, wait_http_ok
from bench.scenarios import REPO_ROOT, request_body
from bench.socket_writes import SYSCALLS, tcp_writes
from bench.targets import create_key, sluicegate_config, start_mock

MODEL = "mock-c20-t0"
TARGETS = ("mock", "bare", "sluicegate", "sluicegate-base")
COLLECTED = re.compile(r"Collected : (\d+)")


@dataclass(frozen=True)
class Meter:
    """What is counted, by which tool wrapped around the server, and how its total is read."""

    name: str
    tool: str
    title: str
    unit: str

    def wrapper(self, trace: Path) -> list[str]:
        if self.tool == "valgrind":
            return ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"]
        calls = "trace=" + ",".join(SYSCALLS)
        return ["strace", "-f", "-qq", "-e", calls, "-e", "signal=none", "-o", str(trace)]

    def total(self, target: str, log: Path, trace: Path) -> int:
        if self.tool == "strace":
            if not trace.exists():
                raise RuntimeError(f"strace wrote no trace for {target}; see {log}")
            writes = tcp_writes(trace.read_text(errors="replace"))
            if writes == 0:
                raise RuntimeError(f"strace saw {target} write to no TCP socket; see {trace}")
            return writes
        found = COLLECTED.findall(log.read_text(errors="replace"))
        if not found:
            raise RuntimeError(f"callgrind reported no count for {target}; see {log}")
        return int(found[-1])


METERS = {
    "instructions": Meter("instructions", "valgrind", "Instructions", "M instructions"),
    "writes": Meter("writes", "strace", "Write system calls", "write calls"),
}
SERVE = "import sys; from sluicegate.cli import main; sys.exit(main())"


@dataclass
class Count:
    target: str
    streams_low: int
    streams_high: int
    instructions_low: int
    instructions_high: int

    @property
    def per_stream(self) -> float:
        return (self.instructions_high - self.instructions_low) / (self.streams_high - self.streams_low)


async def drive(url: str, headers: dict[str, str], streams: int, concurrency: int) -> None:
    """`streams` streamed answers, each read to its `[DONE]`, `concurrency` at a time."""
    body = request_body(MODEL, stream=True)
    left = streams
    async with aiohttp.ClientSession() as session:

        async def worker() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                async with session.post(url, json=body, headers=headers) as response:
                    data = await response.read()
                    if response.status != 200 or not data.endswith(b"data: [DONE]\n\n"):
                        raise RuntimeError(f"{url}: {response.status} {data[-200:]!r}")

        await asyncio.gather(*(worker() for _ in range(concurrency)))


PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/0"
RULES = ["--budget", "1000000", "--rpm", "10000000", "--tpm", "10000000000"]


def _governance(mode: str | None, tag: str, heartbeat_s: float = 600.0) -> dict[str, object]:
    """The config sections of `--governance` (none when not given)."""
    if mode is None:
        return {}
    if mode == "off":
        return {"governance": {"enabled": False}}
    beats = {"heartbeat_s": heartbeat_s, "instance_timeout_s": max(15.0, 4 * heartbeat_s)}
    sections: dict[str, object] = {"governance": {"enabled": True, **beats}}
    if mode == "postgres":
        sections["database"] = {"url": f"{PG_URL}?schema={tag}"}
        sections["redis"] = {"url": REDIS_URL, "prefix": tag + ":"}
    return sections


def _command(
    target: str, port: int, mock_origin: str, workdir: Path, governance: dict[str, object] | None = None
) -> list[str]:
    if target == "mock":
        return [sys.executable, "-m", "bench.mock_upstream", "--host", "127.0.0.1", "--port", str(port)]
    if target == "bare":
        return [sys.executable, "-m", "bench.bare_proxy", "--upstream", mock_origin, "--port", str(port)]
    data_dir = workdir / f"{target}-data"
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    config = workdir / f"{target}.yaml"
    settings = {**sluicegate_config(mock_origin + "/v1", [MODEL]), **(governance or {})}
    config.write_text(yaml.safe_dump(settings, sort_keys=False))
    cmd = [sys.executable, "-c", SERVE, "serve", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--data-dir", str(data_dir), "--config", str(config), "--workers", "1"]
    return cmd


def count_once(
    target: str,
    streams: int,
    concurrency: int,
    mock_origin: str,
    workdir: Path,
    env: dict[str, str],
    meter: str = "instructions",
    governance: str | None = None,
    heartbeat_s: float = 600.0,
) -> int:
    """The instructions (or writes) of one run of `target` serving `streams` streams (after 20
    to warm up)."""
    port = free_port()
    tag = f"bench_instr_{secrets.token_hex(4)}"
    cmd = _command(target, port, mock_origin, workdir, _governance(governance, tag, heartbeat_s))
    headers: dict[str, str] = {}
    if target.startswith("sluicegate"):
        headers["Authorization"] = "Bearer " + _key(target, workdir, env, governance)
    log = workdir / f"{target}-{streams}.log"
    trace = workdir / f"{target}-{streams}.strace"
    managed = spawn(target, METERS[meter].wrapper(trace) + cmd, log, env=env)
    try:
        wait_http_ok(f"http://127.0.0.1:{port}/health", managed, timeout_s=300)
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        asyncio.run(drive(url, headers, 20, concurrency))
        asyncio.run(drive(url, headers, streams, concurrency))
    finally:
        if managed.proc.poll() is None:
            os.killpg(managed.proc.pid, signal.SIGTERM)
        try:
            managed.proc.wait(timeout=300)
        except subprocess.TimeoutExpired:
            os.killpg(managed.proc.pid, signal.SIGKILL)
            raise
        finally:
            if governance == "postgres":
                drop_schema(tag)
    return METERS[meter].total(target, log, trace)


def _key(target: str, workdir: Path, env: dict[str, str], governance: str | None) -> str:
    """A key made by the target's own build, in its own store; with rules when governance is on."""
    exe = shutil.which("sluicegate")
    if exe is None:
        raise RuntimeError("`sluicegate` is not installed on PATH (pip install -e .)")
    data_dir = workdir / f"{target}-data"
    if governance is None:
        return create_key(exe, data_dir, timeout_s=120)
    rules = RULES if governance != "off" else []
    cmd = [exe, "keys", "create", "--name", "bench", *rules, "--data-dir", str(data_dir)]
    cmd += ["--config", str(workdir / f"{target}.yaml")]
    created = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env={**os.environ, **env}, check=True)
    return created.stdout.strip().splitlines()[-1]


def render(counts: list[Count], meta: dict[str, object]) -> str:
    by_target = {c.target: c for c in counts}
    mock = by_target.get("mock")
    meter = METERS[str(meta.get("count", "instructions"))]
    writes = meter.name == "writes"
    lines = [
        f"# {meter.title} per proxied short stream ({'strace' if writes else 'callgrind'})",
        "",
        f"- date: {meta['date']}; commit `{meta['commit']}`; command: `{meta['command']}`",
        f"- {meta['streams_low']} then {meta['streams_high']} streams of `{MODEL}` per target, "
        f"{meta['concurrency']} in flight; per stream = the difference of the two runs' counts "
        "divided by the difference of their streams",
        f"- governance: {meta.get('governance') or 'as configured by default'}"
        + (f" (heartbeat_s {meta['heartbeat_s']:g})" if meta.get("heartbeat_s") else ""),
        "",
        f"| target | {meter.unit} / stream | x mock |",
        "|---|---:|---:|",
    ]
    for c in counts:
        ratio = f"{c.per_stream / mock.per_stream:.2f}" if mock is not None else "-"
        figure = f"{c.per_stream:.2f}" if writes else f"{c.per_stream / 1e6:.3f}"
        lines.append(f"| {c.target} | {figure} | {ratio} |")
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__)
    parser.add_argument("--targets", default="mock,bare,sluicegate")
    parser.add_argument("--baseline-src", default=None, help="another build's `src`: adds sluicegate-base")
    parser.add_argument("--count", choices=tuple(METERS), default="instructions",
                        help="instructions (callgrind) or write system calls (strace)")  # fmt: skip
    parser.add_argument("--streams-low", type=int, default=200)
    parser.add_argument("--streams", type=int, default=600)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--out", type=Path, default=None, help="write <count>.md and .json here")
    parser.add_argument(
        "--governance", choices=("off", "sqlite", "postgres"), default=None,
        help="sluicegate targets with governance off, or on with this store and a key with rules",
    )  # fmt: skip
    parser.add_argument("--heartbeat-s", type=float, default=600.0,
                        help="durable admission's heartbeat with governance on (see above)")  # fmt: skip
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tool = METERS[args.count].tool
    if shutil.which(tool) is None:
        raise SystemExit(f"{tool} is not on PATH (Debian: apt-get install {tool})")
    wanted = [t.strip() for t in args.targets.split(",") if t.strip()]
    if args.baseline_src:
        wanted.append("sluicegate-base")
    if unknown := set(wanted) - set(TARGETS):
        raise SystemExit(f"unknown targets: {sorted(unknown)}")
    cache = REPO_ROOT / "bench" / ".cache"
    cache.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="instructions-", dir=cache))
    mock = start_mock(workdir)
    if not mock.ok:
        raise SystemExit(f"the mock did not start: {mock.error}")
    origin = mock.base_url.removesuffix("/v1")
    counts = []
    try:
        for target in wanted:
            env = {}
            if target == "sluicegate-base":
                env["PYTHONPATH"] = str(Path(args.baseline_src).resolve())
            low, high = (
                count_once(
                    target,
                    streams,
                    args.concurrency,
                    origin,
                    workdir,
                    env,
                    args.count,
                    args.governance,
                    args.heartbeat_s,
                )
                for streams in (args.streams_low, args.streams)
            )
            result = Count(target, args.streams_low, args.streams, low, high)
            print(f"[{args.count}] {target}: {result.per_stream:,.2f} / stream", file=sys.stderr)
            counts.append(result)
    finally:
        mock.stop()
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=REPO_ROOT)
    meta: dict[str, object] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "commit": commit.stdout.strip() or "unknown",
        "command": "python -m bench.instructions " + " ".join(sys.argv[1:] if argv is None else argv),
        "streams_low": args.streams_low,
        "streams_high": args.streams,
        "concurrency": args.concurrency,
        "count": args.count,
        "governance": args.governance,
        "heartbeat_s": args.heartbeat_s if args.governance not in (None, "off") else None,
    }
    text = render(counts, meta)
    print(text)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"{args.count}.md").write_text(text)
        raw = {"meta": meta, "counts": [{**asdict(c), "per_stream": c.per_stream} for c in counts]}
        (args.out / f"{args.count}.json").write_text(json.dumps(raw, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
