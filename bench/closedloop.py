"""Closed-loop load at a fixed concurrency, for the hop cost (``python -m bench.hop``).

Each of ``concurrency`` workers keeps one keep-alive connection and sends its next request as soon as
the previous answer is complete, until the deadline. That keeps the server saturated at a known
number of streams in flight, which is what CPU per completed stream is measured at; the open-loop
generator (``bench.loadgen``) answers a different question (latency at a fixed offered rate). Every
answer is checked (200, stream ends with ``data: [DONE]``). Two clients: this one (always there),
and ``wrk`` (Debian package ``wrk``: ``apt-get install wrk``), a C client cheaper per request.

Run as ``python -m bench.closedloop '<ClosedSpec JSON>'`` for a ``ClosedResult`` JSON on stdout.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.loadgen import LoadSpec, _Connection, _is_success, _Pool, _request_bytes


@dataclass
class ClosedSpec:
    url: str
    body: dict[str, Any]
    concurrency: int
    duration_s: float
    headers: dict[str, str] = field(default_factory=dict)
    timeout_s: float = 10.0


@dataclass
class ClosedResult:
    client: str
    completed: int
    errors: dict[str, int]
    wall_s: float
    client_cpu_s: float

    @property
    def streams_per_s(self) -> float:
        return self.completed / self.wall_s if self.wall_s > 0 else 0.0


async def run_closed(spec: ClosedSpec) -> ClosedResult:
    """Bounded by ``duration_s + timeout_s``: a worker starts no request after the deadline."""
    open_spec = LoadSpec(url=spec.url, body=spec.body, rate=1.0, duration_s=0.0, headers=spec.headers)
    host, port, request = _request_bytes(open_spec)
    stream = open_spec.stream
    pool = _Pool(host, port, keep_body=not stream, limit=spec.concurrency)
    errors: Counter[str] = Counter()
    completed = 0
    cpu0, t0 = time.process_time(), time.perf_counter()
    deadline = t0 + spec.duration_s

    async def worker() -> None:
        nonlocal completed
        conn: _Connection | None = None
        while time.perf_counter() < deadline:
            try:
                async with asyncio.timeout(spec.timeout_s):
                    if conn is None or conn.closed:
                        conn = await pool.acquire()
                    exchange = conn.send(request)
                    await exchange.waiter
            except TimeoutError:
                errors["timeout"] += 1
            except OSError as exc:
                errors[type(exc).__name__] += 1
            else:
                error = _is_success(exchange, stream)
                if error:
                    errors[error] += 1
                else:
                    completed += 1
                if conn.reusable and not conn.closed:
                    continue
            if conn is not None:  # failed or not reusable: the next request opens a new connection
                conn.close()
                conn = None
        if conn is not None:
            conn.close()

    try:
        await asyncio.gather(*(worker() for _ in range(spec.concurrency)))
    finally:
        pool.close()
    return ClosedResult(
        client="bench.closedloop",
        completed=completed,
        errors=dict(errors),
        wall_s=time.perf_counter() - t0,
        client_cpu_s=time.process_time() - cpu0,
    )


def wrk_script(spec: ClosedSpec) -> str:
    """A wrk Lua script sending the spec's POST and printing its summary as one JSON line."""
    body = json.dumps(spec.body, separators=(",", ":"))
    level = "=" * 4
    assert f"]{level}]" not in body
    lines = ['wrk.method = "POST"', f"wrk.body = [{level}[{body}]{level}]"]
    headers = {"Content-Type": "application/json", **spec.headers}
    lines += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()]
    lines.append(
        "done = function(summary, latency, requests)\n"
        "  local e = summary.errors\n"
        '  io.write(string.format(\'WRK_JSON {"requests": %d, "duration_us": %d, "connect": %d, '
        '"read": %d, "write": %d, "status": %d, "timeout": %d}\\n\', summary.requests, '
        "summary.duration, e.connect, e.read, e.write, e.status, e.timeout))\n"
        "end"
    )
    return "\n".join(lines) + "\n"


def parse_wrk(stdout: str, client_cpu_s: float) -> ClosedResult:
    """Completed = answered requests less non-2xx; wrk does not read bodies, so the hop runs the
    checking client first on every target (a broken stream shows there)."""
    match = re.search(r"^WRK_JSON (\{.*\})$", stdout, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"wrk printed no summary: {stdout[-400:]!r}")
    data = json.loads(match.group(1))
    errors = {k: int(data[k]) for k in ("connect", "read", "write", "status", "timeout") if data[k]}
    return ClosedResult(
        client="wrk",
        completed=int(data["requests"]) - int(data["status"]),
        errors=errors,
        wall_s=data["duration_us"] / 1e6,
        client_cpu_s=client_cpu_s,
    )


def run_wrk(wrk: str, spec: ClosedSpec, workdir: Path) -> ClosedResult:
    import resource

    script = workdir / "hop.lua"
    script.write_text(wrk_script(spec))
    duration = max(1, round(spec.duration_s))
    cmd = [wrk, "-t1", f"-c{spec.concurrency}", f"-d{duration}s", f"--timeout={spec.timeout_s:.0f}s"]
    cmd += ["-s", str(script), spec.url]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + spec.timeout_s + 30)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr[-400:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return parse_wrk(done.stdout, cpu)


def main(argv: list[str] | None = None) -> None:
    from bench.mock_upstream import install_uvloop, raise_fd_limit

    args = sys.argv[1:] if argv is None else argv
    spec = ClosedSpec(**json.loads(args[0] if args else sys.stdin.read()))
    install_uvloop()
    raise_fd_limit()
    result = asyncio.run(run_closed(spec))
    sys.stdout.write(json.dumps(asdict(result)) + "\n")


if __name__ == "__main__":
    main()
