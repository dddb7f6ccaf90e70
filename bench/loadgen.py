"""Open-loop HTTP load generator for chat completions.

Requests are sent at fixed *scheduled* times (``t0 + i / rate``), whatever the target's speed, and
every latency is measured from the scheduled time, not from the moment the request left: a slow
target or a lagging generator therefore shows up in the figures instead of being hidden
(coordinated omission). The client is raw asyncio + httptools over keep-alive connections so the
generator is much cheaper per request than any gateway it measures.

Run as ``python -m bench.loadgen '<LoadSpec JSON>'`` to get a ``LoadResult`` JSON on stdout; the
benchmark runs it in its own process so it never shares a CPU-bound event loop with a target.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import sys
import time
from collections import Counter, deque
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httptools

from bench import stats

IDLE_KEEPALIVE_S = 2.0  # reuse an idle connection only this long: servers close idle ones (uvicorn: 5 s)


@dataclass
class LoadSpec:
    """What to send, how fast and for how long; every loop below is bounded by these numbers."""

    url: str
    body: dict[str, Any]
    rate: float
    duration_s: float
    warmup_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    timeout_s: float = 10.0
    max_connections: int = 4096

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream"))


@dataclass
class LoadResult:
    """Figures for the requests scheduled inside the measured window (warm-up excluded)."""

    offered_rps: float
    window_s: float
    scheduled: int
    ok: int
    failed: int
    errors: dict[str, int]
    completed_rps: float
    success_pct: float
    ttfb_ms: dict[str, float]
    total_ms: dict[str, float]
    send_lag_ms: dict[str, float]
    peak_in_flight: int
    connections_opened: int
    generator_cpu_s: float
    wall_s: float
    raw_ttfb_s: list[float] = field(default_factory=list)
    raw_total_s: list[float] = field(default_factory=list)


class _Exchange:
    """State of one request/response on a connection."""

    __slots__ = ("body", "done", "first_byte", "status", "tail", "waiter")

    def __init__(self, waiter: asyncio.Future[None]) -> None:
        self.waiter = waiter
        self.status = 0
        self.first_byte: float | None = None
        self.done: float | None = None
        self.tail = b""
        self.body: list[bytes] = []


class _Connection(asyncio.Protocol):
    """A keep-alive HTTP/1.1 client connection parsed with httptools."""

    def __init__(self, keep_body: bool) -> None:
        self.keep_body = keep_body
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.current: _Exchange | None = None
        self.closed = False
        self.reusable = True
        self.idle_since = time.perf_counter()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        if self.current is None:  # bytes on an idle connection: the server misbehaved, drop it
            self.close()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionError(f"bad response: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(ConnectionError("connection closed mid-response"))

    def _fail(self, exc: Exception) -> None:
        if self.current is not None and not self.current.waiter.done():
            self.current.waiter.set_exception(exc)
        self.current = None

    def on_headers_complete(self) -> None:
        if self.current is not None:
            self.current.status = self.parser.get_status_code()
            self.reusable = self.parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        cur = self.current
        if cur is None:
            return
        if cur.first_byte is None:
            cur.first_byte = time.perf_counter()
        cur.tail = (cur.tail + body)[-64:]
        if self.keep_body:
            cur.body.append(body)

    def on_message_complete(self) -> None:
        cur = self.current
        if cur is None:
            return
        cur.done = time.perf_counter()
        if cur.first_byte is None:
            cur.first_byte = cur.done
        self.current = None
        self.idle_since = cur.done
        if not cur.waiter.done():
            cur.waiter.set_result(None)
        if not self.reusable:
            self.close()

    def send(self, request: bytes) -> _Exchange:
        assert self.transport is not None and self.current is None
        self.current = _Exchange(asyncio.get_running_loop().create_future())
        self.transport.write(request)
        return self.current

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class _Pool:
    """Idle keep-alive connections; a new one is opened whenever none is idle (bounded by a semaphore)."""

    def __init__(self, host: str, port: int, keep_body: bool, limit: int) -> None:
        self.host, self.port, self.keep_body = host, port, keep_body
        self.idle: deque[_Connection] = deque()
        self.slots = asyncio.Semaphore(limit)
        self.opened = 0

    async def acquire(self) -> _Connection:
        now = time.perf_counter()
        while self.idle:
            conn = self.idle.pop()  # LIFO: the most recently used connection is the least likely closed
            if not conn.closed and now - conn.idle_since < IDLE_KEEPALIVE_S:
                return conn
            conn.close()
        loop = asyncio.get_running_loop()
        keep_body = self.keep_body
        _, conn = await loop.create_connection(lambda: _Connection(keep_body), self.host, self.port)
        self.opened += 1
        return conn

    def release(self, conn: _Connection) -> None:
        if conn.closed or not conn.reusable or conn.current is not None:
            conn.close()
        else:
            self.idle.append(conn)

    def close(self) -> None:
        while self.idle:
            self.idle.pop().close()


def _request_bytes(spec: LoadSpec) -> tuple[str, int, bytes]:
    parts = urlsplit(spec.url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or 80
    path = parts.path or "/"
    body = json.dumps(spec.body, separators=(",", ":")).encode()
    headers = {"Host": f"{host}:{port}", "Content-Type": "application/json", "Accept": "*/*", **spec.headers}
    head = f"POST {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    head += f"Content-Length: {len(body)}\r\n\r\n"
    return host, port, head.encode() + body


def _is_success(exchange: _Exchange, stream: bool) -> str | None:
    """None when the answer is complete and well-formed, else a short error label."""
    if exchange.status != 200:
        return f"http_{exchange.status}"
    if stream:
        return None if exchange.tail.rstrip().endswith(b"data: [DONE]") else "stream_incomplete"
    body = b"".join(exchange.body)
    return None if b'"choices"' in body else "bad_body"


async def run_load(spec: LoadSpec, keep_raw: bool = False) -> LoadResult:
    """Drive one open-loop run. Wall time is bounded by warm-up + duration + timeout + 2 s."""
    host, port, request = _request_bytes(spec)
    pool = _Pool(host, port, keep_body=not spec.stream, limit=spec.max_connections)
    total_n = max(1, round(spec.rate * (spec.warmup_s + spec.duration_s)))
    warm_n = round(spec.rate * spec.warmup_s)
    interval = 1.0 / spec.rate
    t0 = time.perf_counter() + 0.05
    hard_stop = t0 + spec.warmup_s + spec.duration_s + spec.timeout_s + 2.0

    ttfb: list[float] = []
    total: list[float] = []
    lags: list[float] = []
    errors: Counter[str] = Counter()
    done_times: list[float] = []
    in_flight = 0
    peak = 0
    cpu0 = time.process_time()

    async def one(index: int, scheduled: float) -> None:
        nonlocal in_flight, peak
        measured = index >= warm_n
        in_flight += 1
        peak = max(peak, in_flight)
        conn: _Connection | None = None
        try:
            async with asyncio.timeout(max(0.001, scheduled + spec.timeout_s - time.perf_counter())):
                async with pool.slots:
                    conn = await pool.acquire()
                    sent = time.perf_counter()
                    exchange = conn.send(request)
                    await exchange.waiter
                    error = _is_success(exchange, spec.stream)
            pool.release(conn)
            conn = None
            if not measured:
                return
            lags.append(sent - scheduled)
            if error:
                errors[error] += 1
                return
            assert exchange.first_byte is not None and exchange.done is not None
            ttfb.append(exchange.first_byte - scheduled)
            total.append(exchange.done - scheduled)
            done_times.append(exchange.done)
        except TimeoutError:
            if measured:
                errors["timeout"] += 1
        except OSError as exc:
            if measured:
                errors[type(exc).__name__] += 1
        finally:
            in_flight -= 1
            if conn is not None:
                conn.close()

    tasks: set[asyncio.Task[None]] = set()
    unsent = 0
    for i in range(total_n):
        scheduled = t0 + i * interval
        now = time.perf_counter()
        if now > hard_stop - spec.timeout_s:  # hopelessly behind: stop, count the rest as not sent
            unsent = total_n - i
            break
        delay = scheduled - now
        if delay > 0.0005:
            await asyncio.sleep(delay)
        elif i % 32 == 0:
            await asyncio.sleep(0)  # behind schedule: still let responses be read
        task = asyncio.get_running_loop().create_task(one(i, scheduled))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(set(tasks), timeout=max(0.1, hard_stop - time.perf_counter()))
    for task in list(tasks):
        task.cancel()
    if unsent:
        errors["not_sent"] += min(unsent, total_n - warm_n)
    pool.close()
    wall = time.perf_counter() - t0
    scheduled_n = total_n - warm_n
    ok = len(total)
    failed = scheduled_n - ok
    accounted = sum(errors.values())
    if failed > accounted:
        errors["unfinished"] += failed - accounted
    return LoadResult(
        offered_rps=spec.rate,
        window_s=spec.duration_s,
        scheduled=scheduled_n,
        ok=ok,
        failed=failed,
        errors=dict(errors),
        completed_rps=stats.completed_rate(
            ok,
            spec.duration_s,
            min(done_times) if done_times else None,
            max(done_times) if done_times else None,
        ),
        success_pct=100.0 * ok / scheduled_n if scheduled_n else 0.0,
        ttfb_ms=stats.summarize_ms(ttfb),
        total_ms=stats.summarize_ms(total),
        send_lag_ms=stats.summarize_ms(lags),
        peak_in_flight=peak,
        connections_opened=pool.opened,
        generator_cpu_s=time.process_time() - cpu0,
        wall_s=wall,
        raw_ttfb_s=ttfb if keep_raw else [],
        raw_total_s=total if keep_raw else [],
    )


def main(argv: list[str] | None = None) -> None:
    from bench.mock_upstream import install_uvloop, raise_fd_limit

    args = sys.argv[1:] if argv is None else argv
    raw = json.loads(args[0] if args else sys.stdin.read())
    spec = LoadSpec(**raw)
    install_uvloop()
    raise_fd_limit()
    result = asyncio.run(run_load(spec))
    sys.stdout.write(json.dumps(asdict(result)) + "\n")


if __name__ == "__main__":
    main()
