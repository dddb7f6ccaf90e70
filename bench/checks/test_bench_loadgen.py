"""Load generator accounting against a tiny local HTTP server with known timings."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from bench.loadgen import LoadSpec, run_load


@dataclass
class TinyServer:
    """Answers every POST: first SSE event after ``first_s``, the rest after ``rest_s`` more."""

    first_s: float = 0.05
    rest_s: float = 0.05
    status_for: list[int] = field(default_factory=list)  # cycled per request; empty means 200
    hang: bool = False
    send_done: bool = True
    arrivals: list[float] = field(default_factory=list)
    port: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
                index = len(self.arrivals)
                self.arrivals.append(time.perf_counter())
                if self.hang:
                    await asyncio.sleep(30)
                status = self.status_for[index % len(self.status_for)] if self.status_for else 200
                if status != 200:
                    body = b'{"error":{"message":"nope"}}'
                    writer.write(
                        b"HTTP/1.1 %d Err\r\ncontent-length: %d\r\n\r\n%s" % (status, len(body), body)
                    )
                    await writer.drain()
                    continue
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
                )
                await asyncio.sleep(self.first_s)
                writer.write(_frame(b'data: {"delta":1}\n\n'))
                await writer.drain()
                await asyncio.sleep(self.rest_s)
                writer.write((_frame(b"data: [DONE]\n\n") if self.send_done else b"") + b"0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()


def _frame(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


@pytest.fixture
async def tiny() -> AsyncIterator[TinyServer]:
    server_state = TinyServer()
    server = await asyncio.start_server(server_state.handle, "127.0.0.1", 0)
    server_state.port = server.sockets[0].getsockname()[1]
    yield server_state
    server.close()


def _spec(port: int, **overrides: object) -> LoadSpec:
    base: dict[str, object] = {
        "url": f"http://127.0.0.1:{port}/v1/chat/completions",
        "body": {"model": "m", "stream": True, "messages": []},
        "rate": 80.0,
        "duration_s": 0.25,
        "warmup_s": 0.125,
        "timeout_s": 2.0,
    }
    base.update(overrides)
    return LoadSpec(**base)  # type: ignore[arg-type]


async def test_schedules_fixed_rate_and_measures_ttfb_and_total(tiny: TinyServer) -> None:
    result = await run_load(_spec(tiny.port), keep_raw=True)
    assert len(tiny.arrivals) == 30  # (0.125 + 0.25) s x 80/s, warm-up included
    assert result.scheduled == 20 and result.ok == 20 and result.failed == 0
    assert result.success_pct == 100.0
    # Arrivals follow the schedule (1/80 s apart), not the server's pace (which would take 30 x
    # 0.1 s = 3 s one after another). Bounds are loose: a busy machine delays a process, not the
    # schedule's logic.
    span = tiny.arrivals[-1] - tiny.arrivals[0]
    assert 0.2 < span < 0.8
    # Latency counts from the scheduled time, so it is never below the server's own delays.
    assert all(t >= 0.05 for t in result.raw_ttfb_s)
    assert all(t >= 0.10 for t in result.raw_total_s)
    assert result.ttfb_ms["p50"] >= 50 and result.total_ms["p50"] >= 100
    assert 40 < result.completed_rps < 120


async def test_open_loop_keeps_sending_while_responses_are_slow(tiny: TinyServer) -> None:
    tiny.first_s, tiny.rest_s = 0.2, 0.2
    result = await run_load(_spec(tiny.port))
    assert len(tiny.arrivals) == 30
    assert result.ok == 20
    assert result.peak_in_flight >= 20  # ~0.4 s latency x 80/s: a closed loop would stay at 1


async def test_latency_counts_from_scheduled_time_when_queued(tiny: TinyServer) -> None:
    # One connection only: requests queue behind each other, and that wait must be in the latency.
    tiny.first_s, tiny.rest_s = 0.01, 0.01
    result = await run_load(_spec(tiny.port, max_connections=1), keep_raw=True)
    assert result.ok == 20
    assert max(result.raw_total_s) > 0.15  # 20 ms service time at a 12.5 ms interval: the queue grows


async def test_counts_failures_by_reason(tiny: TinyServer) -> None:
    tiny.status_for = [200, 500]
    result = await run_load(_spec(tiny.port))
    assert result.scheduled == 20
    assert result.ok + result.failed == 20
    assert result.ok == 10 and result.errors == {"http_500": 10}
    assert result.success_pct == pytest.approx(50.0)


async def test_timeouts_are_failures_and_bounded(tiny: TinyServer) -> None:
    tiny.hang = True
    started = time.perf_counter()
    result = await run_load(_spec(tiny.port, rate=20.0, duration_s=0.25, warmup_s=0.0, timeout_s=0.3))
    assert time.perf_counter() - started < 3
    assert result.ok == 0 and result.failed == 5
    assert result.errors == {"timeout": 5}


async def test_incomplete_answers_are_failures(tiny: TinyServer) -> None:
    tiny.send_done = False
    result = await run_load(_spec(tiny.port))
    assert result.ok == 0 and result.errors == {"stream_incomplete": 20}
    # Non-streaming requests need a JSON body with choices; an SSE answer does not qualify.
    result = await run_load(_spec(tiny.port, body={"model": "m", "stream": False, "messages": []}))
    assert result.ok == 0 and result.errors == {"bad_body": 20}


async def test_connection_refused_is_counted() -> None:
    result = await run_load(_spec(1, rate=20.0, duration_s=0.2, warmup_s=0.0, timeout_s=0.5))
    assert result.ok == 0 and result.failed == 4
    assert set(result.errors) <= {"ConnectionRefusedError", "OSError"}
