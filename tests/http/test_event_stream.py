"""EventStreamResponse on its own: keep-alives in the silences, never over a write; the
shutdown deadline ends the body. Driven by events, not clocks: the intervals are tiny and
the body's silence lasts until the test has seen what it waits for."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from sluicegate.http.event_stream import EventStreamResponse, KeepAlive
from sluicegate.http.shutdown import Shutdown

KA = b": keep-alive\n\n"


class Client:
    """The ASGI side: records what is sent, checks no two writes overlap, never disconnects."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.writing = 0
        self.keepalives = 0
        self.enough_keepalives = asyncio.Event()

    async def send(self, message: dict[str, Any]) -> None:
        assert self.writing == 0, "two writes at once"
        self.writing += 1
        try:
            self.sent.append(message)
            await asyncio.sleep(0)  # a write that lets the loop run, as a real one may
            if message.get("body") == KA:
                self.keepalives += 1
                if self.keepalives == 3:
                    self.enough_keepalives.set()
        finally:
            self.writing -= 1

    async def receive(self) -> dict[str, Any]:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    def bodies(self) -> list[bytes]:
        return [m["body"] for m in self.sent if m["type"] == "http.response.body"]


async def test_keepalives_fill_a_silence_and_stop_when_data_comes() -> None:
    client = Client()

    async def body() -> AsyncIterator[bytes]:
        yield b"data: 1\n\n"
        await client.enough_keepalives.wait()  # silent until three keep-alives went out
        yield b"data: 2\n\n"

    response = EventStreamResponse(body(), keepalive=KeepAlive(KA, 0.001, 0.001))
    await asyncio.wait_for(response({"type": "http"}, client.receive, client.send), 30)

    bodies = client.bodies()
    assert bodies[0] == b"data: 1\n\n"
    assert bodies[-2:] == [b"data: 2\n\n", b""]
    assert set(bodies[1:-2]) == {KA} and len(bodies[1:-2]) >= 3
    assert client.sent[-1]["more_body"] is False


async def test_a_stream_still_waiting_starts_with_a_keepalive() -> None:
    client = Client()

    async def body() -> AsyncIterator[bytes]:
        await client.enough_keepalives.wait()
        yield b"data: first\n\n"

    response = EventStreamResponse(body(), keepalive=KeepAlive(KA, 0.001, 0.001), keepalive_at_once=True)
    await asyncio.wait_for(response({"type": "http"}, client.receive, client.send), 30)

    assert client.sent[0]["type"] == "http.response.start" and client.sent[0]["status"] == 200
    bodies = client.bodies()
    assert bodies[0] == KA
    assert bodies[-2:] == [b"data: first\n\n", b""]


async def test_without_keepalive_a_silence_stays_silent() -> None:
    client = Client()
    gate = asyncio.Event()

    async def body() -> AsyncIterator[bytes]:
        yield b"data: 1\n\n"
        for _ in range(50):  # many loop turns of silence
            await asyncio.sleep(0.001)
        gate.set()
        yield b"data: 2\n\n"

    response = EventStreamResponse(body())
    await asyncio.wait_for(response({"type": "http"}, client.receive, client.send), 30)
    assert gate.is_set()
    assert client.bodies() == [b"data: 1\n\n", b"data: 2\n\n", b""]


async def test_the_shutdown_deadline_ends_the_body_with_its_last_words() -> None:
    client = Client()
    shutdown = Shutdown()
    waiting = asyncio.Event()

    async def body() -> AsyncIterator[bytes]:
        yield b"data: 1\n\n"
        try:
            waiting.set()
            await asyncio.Event().wait()  # an answer that would never end
        except asyncio.CancelledError:
            yield b"data: error\n\ndata: [DONE]\n\n"

    response = EventStreamResponse(body(), shutdown=shutdown)
    serving = asyncio.ensure_future(response({"type": "http"}, client.receive, client.send))
    await waiting.wait()
    assert shutdown.in_flight == 1
    shutdown.end()
    await asyncio.wait_for(serving, 30)

    assert client.bodies() == [b"data: 1\n\n", b"data: error\n\ndata: [DONE]\n\n", b""]
    assert shutdown.in_flight == 0


async def test_a_response_starting_after_the_deadline_is_stopped_at_once() -> None:
    shutdown = Shutdown()
    shutdown.end()
    future = shutdown.watch()
    assert future.done() and shutdown.in_flight == 0


async def test_a_client_leaving_stops_the_body_and_the_servers_task_ends_plainly() -> None:
    """The response produces in the server's own task: the client leaving cancels the body
    there, and the cancellation is taken back, so the task ends as an answer that ended."""
    client = Client()
    stopped = asyncio.Event()
    left: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def body() -> AsyncIterator[bytes]:
        try:
            yield b"data: 1\n\n"
            left.set_result(None)  # the client goes away while the body waits for more
            await asyncio.Event().wait()
            yield b"data: never\n\n"
        finally:
            stopped.set()

    response = EventStreamResponse(body(), disconnect=left)
    task = asyncio.ensure_future(response({"type": "http"}, client.receive, client.send))
    await asyncio.wait_for(asyncio.shield(task), 30)
    assert stopped.is_set() and client.bodies() == [b"data: 1\n\n"]
    assert not task.cancelled() and task.cancelling() == 0


async def test_a_cancellation_from_outside_still_cancels_the_server_task() -> None:
    client = Client()
    started = asyncio.Event()

    async def body() -> AsyncIterator[bytes]:
        yield b"data: 1\n\n"
        started.set()
        await asyncio.Event().wait()
        yield b"data: never\n\n"

    task = asyncio.ensure_future(EventStreamResponse(body())({"type": "http"}, client.receive, client.send))
    await asyncio.wait_for(started.wait(), 30)
    task.cancel()
    done, _ = await asyncio.wait((task,), timeout=30)
    assert task in done and task.cancelled()
