"""``python -m bench.soak``: mixed upstream faults against a two-deployment model for 2 minutes.

A gateway process (one worker) serves the model `soak` from two fault upstreams (see
`testsupport/fault_upstream.py`): `steady`, which fails only when a request asks it to, and
`flaky`, which also refuses connections 3 s out of every 10 and answers a share of its attempts
with 429 (Retry-After: 1), 500 or 503 before the first byte. Requests arrive at a fixed rate
(open loop); each asks for one fault of the mix in its body (`fault`), which every deployment
obeys. Mid-stream faults and client cancellations exercise the error events and cancellation;
flaky's own faults exercise retries, fail-over, cooldowns and probes.

Every request must end in exactly one defined outcome: `ok` (the whole text, a finish reason,
[DONE]), `http_error:<status>:<code>` (a JSON error in OpenAI's shape), `stream_error:<code>`
(the text so far, one error event, [DONE]) or `client_cancelled` (we left; the upstream must
see it). Anything else (a stream cut without an error event, a hang, a malformed body) is
`undefined`. A fault's outcome must also be the one it calls for, with two explained
exceptions counted apart: an answer under way on `flaky` when it goes down ends in the error
event, and while both deployments are taken out at once the breaker answers 503. The gateway's
RSS may not grow by more than `MEMORY_BOUND_MB` between the end of the warm-up and the end.

Not part of CI; run from the repo root (`PYTHONPATH=src` to measure a work tree's code).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import yaml

from bench.processes import Managed, free_port, spawn, stop, tree_rss, wait_http_ok
from testsupport.fault_upstream import Attempt, Fault, FaultUpstream

MEMORY_BOUND_MB = 16.0  # growth allowed from the end of the warm-up to the end of the soak
WARMUP_S = 15.0
CANCEL_AFTER_WORDS = 2  # a cancelling client leaves after this many content chunks

# fault asked for in the body, streamed?, weight, the outcome it must give
MIX: list[tuple[str, bool, int, str]] = [
    ("ok:chunks=8,gap_s=0.03", True, 40, "ok"),
    ("ok:chunks=8", False, 14, "ok"),
    ("delay:seconds=0.3,chunks=6,gap_s=0.02", True, 5, "ok"),
    ("no_done:chunks=6,gap_s=0.02", True, 5, "ok"),
    ("status:code=400", True, 3, "http_error:400:None"),
    ("reset:after=3,gap_s=0.02", True, 5, "stream_error:upstream_error"),
    ("truncated:after=2", True, 4, "stream_error:upstream_error"),
    ("invalid_json:after=2", True, 4, "stream_error:upstream_error"),
    ("no_finish:after=2", True, 3, "stream_error:upstream_error"),
    ("stall:after=2,seconds=20", True, 4, "stream_error:upstream_timeout"),
    ("ok:chunks=40,gap_s=0.05", True, 6, "client_cancelled"),
    ("ok:chunks=8", False, 3, "ok"),
]
FLAKY_FAULTS = ["status:code=429,retry_after=1", "status:code=500", "status:code=503"]
# when both deployments are out at once (flaky refusing, steady cut mid-stream three times in a
# row), the breaker answers for them: a defined outcome, counted apart
COOLING = "http_error:503:deployments_cooling_down"


def gateway_config(flaky: str, steady: str) -> dict[str, Any]:
    return {
        "models": [
            {
                "name": "soak",
                "retries": {
                    "count": 1,
                    "backoff_base_s": 0.05,
                    "backoff_cap_s": 0.2,
                    "retry_after_cap_s": 1.5,
                },
                "cooldown": {"failures": 3, "seconds": 2},
                "timeouts": {"connect": 1, "first_byte": 5, "idle": 1},
                "deployments": [
                    {"name": "flaky", "provider": "openai", "base_url": flaky, "api_key": "k"},
                    {"name": "steady", "provider": "openai", "base_url": steady, "api_key": "k"},
                ],
            }
        ]
    }


def classify(status: int, body: bytes, stream: bool, expected_text: str) -> str:
    """The one outcome a response amounts to (`undefined:<why>` when it is none of them)."""
    if status != 200:
        try:
            error = orjson.loads(body)["error"]
            assert isinstance(error["message"], str) and error["message"] and "type" in error
        except (orjson.JSONDecodeError, KeyError, TypeError, AssertionError):
            return f"undefined:status {status} without an OpenAI error body"
        return f"http_error:{status}:{error.get('code')}"
    if not stream:
        try:
            answer = orjson.loads(body)
            text = answer["choices"][0]["message"]["content"]
            finish = answer["choices"][0]["finish_reason"]
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
            return "undefined:malformed answer"
        return "ok" if text == expected_text and finish else "undefined:wrong answer"
    if not body.endswith(b"\n\n"):
        return "undefined:stream cut mid-event"
    events = body[:-2].split(b"\n\n")
    if events[-1] != b"data: [DONE]" or events.count(b"data: [DONE]") != 1:
        return "undefined:stream without [DONE]"
    text, finishes, errors = "", 0, []
    for raw in events[:-1]:
        if not raw.startswith(b"data: "):
            if raw.startswith(b":"):
                continue  # a comment (keep-alive)
            return "undefined:not an SSE data event"
        data = orjson.loads(raw[6:])
        if "error" in data:
            errors.append(data["error"])
            continue
        if errors:
            return "undefined:events after the error event"
        for choice in data.get("choices") or ():
            text += choice["delta"].get("content") or ""
            finishes += choice.get("finish_reason") is not None
    if errors:
        if len(errors) > 1 or finishes:
            return "undefined:an error event after a finish, or two"
        return f"stream_error:{errors[0].get('code')}"
    if finishes != 1:
        return "undefined:no finish reason"
    return "ok" if text == expected_text else "undefined:wrong text"


@dataclass
class Record:
    tag: str
    fault: str
    stream: bool
    expected: str
    outcome: str = "undefined:never finished"
    deployment: str | None = None
    attempts: int | None = None
    left_at: float | None = None  # when a cancelling client closed the connection
    seconds: float = 0.0
    detail: str = ""  # the end of the body, when the outcome is not the expected one


@dataclass
class Soak:
    url: str
    headers: dict[str, str]
    records: list[Record] = field(default_factory=list)

    async def one(
        self, session: aiohttp.ClientSession, n: int, fault: str, stream: bool, expected: str
    ) -> None:
        record = Record(f"r{n}", fault, stream, expected)
        self.records.append(record)
        body = {
            "model": "soak",
            "messages": [{"role": "user", "content": "hi"}],
            "stream": stream,
            "fault": fault,
            "tag": record.tag,
        }
        started = time.monotonic()
        try:
            async with session.post(self.url, json=body, headers=self.headers) as response:
                record.deployment = response.headers.get("x-sluicegate-deployment")
                attempts = response.headers.get("x-sluicegate-attempts")
                record.attempts = int(attempts) if attempts else None
                raw = b""
                if expected == "client_cancelled" and response.status == 200:
                    words = 0
                    async for line in response.content:
                        raw += line
                        words += line.startswith(b"data: ") and b'"content":"w' in line
                        if words >= CANCEL_AFTER_WORDS:
                            record.left_at = time.monotonic()
                            response.close()
                            record.outcome = "client_cancelled"
                            return
                    # it ended before the client could leave (flaky went down under it):
                    # what it ended with must still be defined
                else:
                    raw = await response.read()
                record.outcome = classify(response.status, raw, stream, Fault.parse(fault).text())
                if record.outcome != expected:
                    record.detail = raw[-300:].decode(errors="replace")
        except (aiohttp.ClientError, TimeoutError) as exc:
            record.outcome = f"undefined:{type(exc).__name__}"
        finally:
            record.seconds = time.monotonic() - started


def flap(flaky: FaultUpstream, stop_at: float, rng: random.Random) -> None:
    """Refuse connections 3 s out of every 10; between, queue a pre-first-byte fault for about
    one attempt in five."""
    while time.monotonic() < stop_at:
        cycle = time.monotonic() % 10
        if cycle < 3:
            flaky.refuse()
            time.sleep(3 - cycle)
            flaky.accept()
        elif rng.random() < 0.5 and len(flaky.script) < 3:
            flaky.enqueue(rng.choice(FLAKY_FAULTS))
        time.sleep(0.1)


async def drive(soak: Soak, rate: float, duration_s: float, rng: random.Random) -> None:
    weights = [w for _, _, w, _ in MIX]
    timeout = aiohttp.ClientTimeout(total=60)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        t0 = time.monotonic()
        tasks = []
        for n in range(int(rate * duration_s)):
            delay = t0 + n / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            fault, stream, _, expected = rng.choices(MIX, weights)[0]
            tasks.append(asyncio.create_task(soak.one(session, n, fault, stream, expected)))
        await asyncio.gather(*tasks)


def sample_rss(pid: int, samples: list[tuple[float, float]], stop_event: threading.Event) -> None:
    t0 = time.monotonic()
    while not stop_event.wait(1.0):
        samples.append((time.monotonic() - t0, tree_rss(pid) / 2**20))


def summarise(
    soak: Soak, flaky: FaultUpstream, steady: FaultUpstream, rss: list[tuple[float, float]]
) -> dict[str, Any]:
    records = soak.records
    outcomes = Counter(r.outcome for r in records)
    undefined = [r for r in records if r.outcome.startswith("undefined")]
    cooling = [r for r in records if r.outcome == COOLING and r.expected != COOLING]
    by_tag: dict[str, list[Attempt]] = {}
    for up in (flaky, steady):
        for a in up.attempts:
            by_tag.setdefault(a.tag or "", []).append(a)
    # an answer under way when flaky went down is cut there: the error event it calls for
    killed = [
        r
        for r in records
        if r.outcome == "stream_error:upstream_error" and any(a.killed for a in by_tag.get(r.tag, []))
    ]
    unexpected = [
        r
        for r in records
        if r.outcome != r.expected and r not in undefined and r.outcome != COOLING and r not in killed
    ]
    cancel_ms = []
    missed_cancels = 0
    for r in records:
        if r.outcome == "client_cancelled" and r.left_at is not None:
            seen = [a.cancelled_at for a in by_tag.get(r.tag, []) if a.cancelled_at is not None]
            if seen:
                cancel_ms.append((min(seen) - r.left_at) * 1000)
            else:
                missed_cancels += 1
    warm = [mb for t, mb in rss if t >= WARMUP_S]
    baseline = warm[0] if warm else float("nan")
    growth = (warm[-1] - baseline) if warm else float("nan")
    return {
        "requests": len(records),
        "outcomes": dict(outcomes.most_common()),
        "undefined": len(undefined),
        "undefined_examples": [(r.fault, r.outcome) for r in undefined[:10]],
        "unexpected": len(unexpected),
        "unexpected_examples": [
            (r.fault, r.expected, r.outcome, r.deployment, r.attempts, r.detail) for r in unexpected[:10]
        ],
        "cooling_down_503": len(cooling),
        "cut_when_flaky_went_down": len(killed),
        "served_by": dict(Counter(r.deployment for r in records if r.outcome == "ok")),
        "attempts_of_ok": dict(sorted(Counter(r.attempts for r in records if r.outcome == "ok").items())),
        "upstream_attempts": {"flaky": len(flaky.attempts), "steady": len(steady.attempts)},
        "cancel_ms": {
            "count": len(cancel_ms),
            "missed": missed_cancels,
            "median": round(statistics.median(cancel_ms), 2) if cancel_ms else None,
            "p99": round(sorted(cancel_ms)[int(len(cancel_ms) * 0.99) - 1], 2) if cancel_ms else None,
            "max": round(max(cancel_ms), 2) if cancel_ms else None,
        },
        "rss_mb": {
            "after_warmup": round(baseline, 1),
            "end": round(warm[-1], 1) if warm else None,
            "max": round(max(mb for _, mb in rss), 1) if rss else None,
            "growth": round(growth, 1),
            "bound": MEMORY_BOUND_MB,
        },
        "latency_s_ok": {
            "p50": round(statistics.median(r.seconds for r in records if r.outcome == "ok"), 3),
            "max": round(max(r.seconds for r in records if r.outcome == "ok"), 3),
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=120.0, help="seconds of load (default 120)")
    parser.add_argument("--rate", type=float, default=20.0, help="requests per second (default 20)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    workdir = Path(tempfile.mkdtemp(prefix="soak-"))
    flaky, steady = FaultUpstream().start(), FaultUpstream().start()
    config = workdir / "sluicegate.yaml"
    config.write_text(yaml.safe_dump(gateway_config(flaky.base_url, steady.base_url)))
    data_dir = workdir / "data"
    data_dir.mkdir()
    exe = [sys.executable, "-m", "sluicegate.cli"]
    key = _key(exe, data_dir)
    port = free_port()
    gateway: Managed = spawn(
        "sluicegate",
        [
            *exe,
            "serve",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
            "--config",
            str(config),
            "--workers",
            "1",
        ],
        workdir / "gateway.log",
    )
    rss: list[tuple[float, float]] = []
    stop_sampling = threading.Event()
    try:
        wait_http_ok(f"http://127.0.0.1:{port}/health", gateway, timeout_s=60)
        soak = Soak(f"http://127.0.0.1:{port}/v1/chat/completions", {"Authorization": f"Bearer {key}"})
        sampler = threading.Thread(target=sample_rss, args=(gateway.pid, rss, stop_sampling), daemon=True)
        sampler.start()
        stop_at = time.monotonic() + args.duration
        flapper = threading.Thread(
            target=flap, args=(flaky, stop_at, random.Random(args.seed + 1)), daemon=True
        )
        flapper.start()
        print(
            f"[soak] {args.duration:.0f} s at {args.rate:g} req/s; gateway log {workdir / 'gateway.log'}",
            file=sys.stderr,
        )
        asyncio.run(drive(soak, args.rate, args.duration, rng))
        flapper.join()
        time.sleep(1.5)  # a last RSS sample after the load
    finally:
        stop_sampling.set()
        stop(gateway)
        flaky.stop()
        steady.stop()
    summary = summarise(soak, flaky, steady, rss)
    summary["config"] = {"duration_s": args.duration, "rate": args.rate, "seed": args.seed}
    passed = (
        summary["undefined"] == 0
        and summary["unexpected"] == 0
        and summary["cancel_ms"]["missed"] == 0
        and summary["rss_mb"]["growth"] <= MEMORY_BOUND_MB
    )
    summary["passed"] = passed
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "soak.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    print(f"[soak] {'PASS' if passed else 'FAIL'}; wrote {args.out / 'soak.json'}", file=sys.stderr)
    return 0 if passed else 1


def _key(exe: list[str], data_dir: Path) -> str:
    done = subprocess.run(
        [*exe, "keys", "create", "--name", "soak", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout.strip().splitlines()[-1]


if __name__ == "__main__":
    sys.exit(main())
