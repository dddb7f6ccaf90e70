"""Stopping a real `sluicegate serve` with SIGTERM and Ctrl-C while streams are in flight.

What each client receives, the exit code, and that the output holds no traceback. The local
stream is made long by its grammar (a JSON string of at least 3,000 characters: the model
may not end it sooner), so it is surely still generating when the deadline comes; nothing
here measures time."""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from tests.support.openai_upstream import OpenAIUpstream, Reply, chunk
from tests.support.server import LOCAL_MODEL, Gateway, start_gateway
from tests.support.streams import LONG_JSON, StreamClient


def assert_ended_by_shutdown(client: StreamClient) -> None:
    events = client.events()
    assert events[-1] == b"data: [DONE]"
    error = orjson.loads(events[-2].removeprefix(b"data: "))["error"]
    assert error["code"] == "shutting_down", error
    assert error["type"] == "server_error"
    assert set(error) >= {"message", "type", "code", "param"}


def assert_complete(client: StreamClient, text: str) -> None:
    events = client.events()
    assert events[-1] == b"data: [DONE]"
    chunks = [orjson.loads(event.removeprefix(b"data: ")) for event in events[:-1]]
    assert all("error" not in c for c in chunks)
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]) == text
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def assert_clean_exit(gateway: Gateway) -> None:
    assert gateway.process.wait(60) == 0, gateway.log()
    output = gateway.log()
    assert "Traceback" not in output, output
    assert "KeyboardInterrupt" not in output, output


def refuses_connections(gateway: Gateway) -> bool:
    host, port = gateway.base_url.removeprefix("http://").split(":")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection((host, int(port)), timeout=1).close()
        except ConnectionRefusedError:
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def local_gateway(tmp_path: Path) -> Iterator[Gateway]:
    config = {
        "server": {"shutdown_timeout_s": 1, "keepalive_first_s": 0.05, "keepalive_interval_s": 0.5},
        "models": [{"name": LOCAL_MODEL, "provider": "local", "parallel": 1, "queue_size": 2}],
    }
    server = start_gateway(tmp_path, config, startup_s=120)
    yield server
    server.stop()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_a_running_and_a_queued_local_stream_end_with_an_error_event_at_the_deadline(
    local_gateway: Gateway, signum: int
) -> None:
    gateway = local_gateway
    story = {"role": "user", "content": "Write a long story."}
    running = StreamClient(
        gateway, {"model": LOCAL_MODEL, "messages": [story], "max_tokens": 1800, "response_format": LONG_JSON}
    )
    assert running.content.wait(120), running.raw
    queued = StreamClient(
        gateway, {"model": LOCAL_MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 5}
    )
    assert queued.keepalive.wait(60), queued.raw  # waiting in the queue, committed by a keep-alive

    gateway.process.send_signal(signum)

    assert_ended_by_shutdown(running)
    assert_ended_by_shutdown(queued)
    assert b"data: {" in running.raw.split(b"shutting_down")[0]  # the text so far came first
    assert_clean_exit(gateway)


@pytest.fixture
def upstream_gateway(tmp_path: Path, clean_upstream: OpenAIUpstream) -> Iterator[Gateway]:
    config = {
        "server": {"shutdown_timeout_s": 60},
        "models": [{"name": "up", "provider": "openai", "base_url": clean_upstream.base_url}],
    }
    server = start_gateway(tmp_path, config)
    yield server
    server.stop()


def test_sigterm_stops_accepting_and_a_second_ctrl_c_ends_the_streams_at_once(
    upstream_gateway: Gateway, clean_upstream: OpenAIUpstream
) -> None:
    gateway = upstream_gateway
    clean_upstream.enqueue(
        Reply(chunks=[chunk(role="assistant", content=""), chunk("Once")], hang_after=True)
    )
    stream = StreamClient(gateway, {"model": "up", "messages": [{"role": "user", "content": "tell"}]})
    assert stream.content.wait(30), stream.raw

    gateway.process.send_signal(signal.SIGTERM)
    assert refuses_connections(gateway)
    assert not stream.done.is_set()  # the upstream never ends it; the deadline is a minute away
    gateway.process.send_signal(signal.SIGINT)

    assert_ended_by_shutdown(stream)
    assert b'"content":"Once"' in stream.raw
    assert_clean_exit(gateway)


def test_ctrl_c_on_an_idle_gateway_is_a_quiet_stop(upstream_gateway: Gateway) -> None:
    upstream_gateway.process.send_signal(signal.SIGINT)
    assert_clean_exit(upstream_gateway)


def test_ctrl_c_with_workers_lets_every_stream_finish(tmp_path: Path, clean_upstream: OpenAIUpstream) -> None:
    config = {
        "server": {"workers": 2, "shutdown_timeout_s": 60},
        "models": [{"name": "up", "provider": "openai", "base_url": clean_upstream.base_url}],
    }
    gateway = start_gateway(tmp_path, config, new_session=True)
    try:
        words = ["one", " two", " three", " four"]
        reply = [chunk(role="assistant", content=""), *(chunk(w) for w in words), chunk(finish="stop")]
        clean_upstream.enqueue(*(Reply(chunks=[*reply, b"data: [DONE]\n\n"], delay_s=0.3) for _ in range(4)))
        streams = [
            StreamClient(gateway, {"model": "up", "messages": [{"role": "user", "content": "count"}]})
            for _ in range(4)
        ]
        for stream in streams:
            assert stream.content.wait(30), stream.raw

        os.killpg(gateway.process.pid, signal.SIGINT)  # a terminal's Ctrl-C: master and workers

        for stream in streams:
            assert_complete(stream, "".join(words))
        assert_clean_exit(gateway)
        assert "exited with code" not in gateway.log()
    finally:
        gateway.stop()
