"""The hop-cost bench: the bare proxy forwards bytes intact, the closed-loop clients count honestly,
and the per-stream figures are medians of CPU over completed streams."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import uvicorn
from openai import APIStatusError, AsyncOpenAI

from bench.bare_proxy import BareProxy
from bench.closedloop import ClosedSpec, parse_wrk, run_closed, run_wrk, wrk_script
from bench.hop import Row, Sample, render, summarise
from bench.mock_upstream import MockParams, bound_port, start_mock
from bench.scenarios import request_body


@pytest.fixture
async def mock_origin() -> AsyncIterator[str]:
    server = await start_mock(port=0, default=MockParams(chunks=4, total_ms=0))
    yield f"http://127.0.0.1:{bound_port(server)}"
    server.close()


async def _serve(app: BareProxy) -> tuple[uvicorn.Server, asyncio.Task[None], int]:
    config = uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="on", log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(200):
        if server.started:
            break
        await asyncio.sleep(0.01)
    assert server.started
    return server, task, int(server.servers[0].sockets[0].getsockname()[1])


@pytest.fixture
async def bare_url(mock_origin: str) -> AsyncIterator[str]:
    server, task, port = await _serve(BareProxy(mock_origin))
    yield f"http://127.0.0.1:{port}/v1"
    server.should_exit = True
    await task


async def test_bare_proxy_streams_what_the_mock_sends(mock_origin: str, bare_url: str) -> None:
    async def chunks(base_url: str) -> list[str | None]:
        client = AsyncOpenAI(base_url=base_url, api_key="dummy", max_retries=0)
        stream = await client.chat.completions.create(
            model="mock-c6-t0", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        got = [c.choices[0].delta.content async for c in stream if c.choices]
        await client.close()
        return got

    direct, proxied = await chunks(f"{mock_origin}/v1"), await chunks(bare_url)
    assert proxied == direct
    assert len([c for c in proxied if c]) == 6


async def test_bare_proxy_answers_502_when_the_upstream_is_down() -> None:
    server, task, port = await _serve(BareProxy("http://127.0.0.1:9"))  # discard port: refused
    try:
        client = AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="dummy", max_retries=0)
        with pytest.raises(APIStatusError) as caught:
            await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
        await client.close()
        assert caught.value.status_code == 502
    finally:
        server.should_exit = True
        await task


def _spec(url: str, **overrides: object) -> ClosedSpec:
    base: dict[str, object] = {
        "url": url,
        "body": request_body("mock-c20-t0", stream=True),
        "concurrency": 4,
        "duration_s": 0.3,
        "timeout_s": 2.0,
    }
    base.update(overrides)
    return ClosedSpec(**base)  # type: ignore[arg-type]


async def test_closed_loop_keeps_the_concurrency_busy_and_checks_answers(mock_origin: str) -> None:
    result = await run_closed(_spec(f"{mock_origin}/v1/chat/completions"))
    assert result.completed > 0  # short streams back to back on 4 connections for 0.3 s
    assert result.errors == {}
    assert result.wall_s >= 0.3  # it ran for the whole duration (how much longer is the machine's)
    bad = await run_closed(_spec(f"{mock_origin}/nowhere"))
    assert bad.completed == 0
    assert set(bad.errors) == {"http_404"}


def test_wrk_script_sends_the_spec() -> None:
    spec = _spec("http://127.0.0.1:1/v1/chat/completions", headers={"Authorization": "Bearer k"})
    script = wrk_script(spec)
    assert 'wrk.method = "POST"' in script
    assert '"model":"mock-c20-t0"' in script and '"stream":true' in script
    assert 'wrk.headers["Authorization"] = "Bearer k"' in script
    assert 'wrk.headers["Content-Type"] = "application/json"' in script


def test_wrk_summary_counts_non_2xx_as_not_completed() -> None:
    out = 'Running 1s test\nWRK_JSON {"requests": 120, "duration_us": 1500000, "connect": 0, "read": 0, '
    out += '"write": 0, "status": 20, "timeout": 1}\n'
    result = parse_wrk(out, client_cpu_s=0.25)
    assert (result.completed, result.wall_s, result.client_cpu_s) == (100, 1.5, 0.25)
    assert result.errors == {"status": 20, "timeout": 1}
    with pytest.raises(RuntimeError):
        parse_wrk("no summary", 0.0)


@pytest.mark.tools  # wrk
async def test_wrk_drives_the_mock(mock_origin: str, tmp_path: Path) -> None:
    wrk = shutil.which("wrk")
    assert wrk is not None
    spec = _spec(f"{mock_origin}/v1/chat/completions", duration_s=1.0)
    result = await asyncio.to_thread(run_wrk, wrk, spec, tmp_path)
    assert result.client == "wrk"
    assert result.completed > 0
    assert result.errors == {}


def _sample(target: str, rnd: int, completed: int, target_cpu: float, mock_cpu: float) -> Sample:
    return Sample(target, rnd, "wrk", completed, {}, 10.0, target_cpu, mock_cpu, 0.5)


def test_medians_per_stream_and_ratio_to_the_direct_mock() -> None:
    samples = [
        _sample("direct", 0, 10_000, 2.0, 2.0),  # 0.2 ms per stream
        _sample("direct", 1, 10_000, 2.2, 2.2),
        _sample("direct", 2, 10_000, 1.8, 1.8),
        _sample("sluicegate", 0, 5_000, 3.0, 1.0),  # 0.6 ms
        _sample("sluicegate", 1, 5_000, 3.5, 1.0),  # 0.7 ms
        _sample("sluicegate", 2, 0, 0.5, 0.0),  # nothing completed: not a figure
    ]
    rows = {r.target: r for r in summarise(samples)}
    assert rows["direct"].target_ms == pytest.approx(0.2)
    assert rows["direct"].streams_per_s == pytest.approx(1000)
    assert rows["sluicegate"].rounds == 2
    assert rows["sluicegate"].target_ms == pytest.approx(0.65)
    assert (rows["sluicegate"].target_ms_min, rows["sluicegate"].target_ms_max) == pytest.approx((0.6, 0.7))
    assert rows["sluicegate"].mock_ms == pytest.approx(0.2)
    assert rows["sluicegate"].ratio_to(rows["direct"].target_ms) == pytest.approx(3.25)
    markdown = render(list(rows.values()), {"client": "wrk", "concurrency": 50, "failed": {"portkey": "x"}})
    line = next(li for li in markdown.splitlines() if li.startswith("| sluicegate"))
    assert "| 0.650 |" in line and "| 3.25 |" in line
    assert "| portkey | failed: x |" in markdown


def test_a_row_without_direct_has_no_ratio() -> None:
    row = Row("bare", 1, 100.0, 0.3, 0.3, 0.3, 0.2, 0.05, 0)
    line = next(li for li in render([row], {}).splitlines() if li.startswith("| bare"))
    assert line.split("|")[5].strip() == "-"
