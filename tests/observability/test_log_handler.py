"""The log handler's batching and the formatters' cached time: cheaper lines, the same text."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import threading
from collections.abc import Iterator

import pytest

from sluicegate.observability.logs import TEXT_FORMAT, JSONFormatter, LoopBatchedHandler, TextFormatter


class CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


@pytest.fixture
def logged() -> Iterator[tuple[logging.Logger, CountingStream]]:
    stream = CountingStream()
    handler = LoopBatchedHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("sluicegate.test.batched")
    logger.handlers, logger.propagate, logger.level = [handler], False, logging.DEBUG
    try:
        yield logger, stream
    finally:
        logger.handlers, logger.propagate = [], True


async def test_lines_of_one_loop_turn_are_written_together_when_it_ends(
    logged: tuple[logging.Logger, CountingStream],
) -> None:
    logger, stream = logged
    for n in range(3):
        logger.info("request %d", n)
    assert stream.getvalue() == ""  # still this turn of the loop
    await asyncio.sleep(0)
    assert stream.getvalue() == "INFO request 0\nINFO request 1\nINFO request 2\n"
    assert stream.writes == 1
    logger.info("next turn")
    await asyncio.sleep(0)
    assert stream.getvalue().endswith("INFO next turn\n") and stream.writes == 2


async def test_a_warning_is_written_at_once_after_what_waits(logged: tuple[logging.Logger, CountingStream]) -> None:
    logger, stream = logged
    logger.info("before")
    logger.warning("trouble")
    assert stream.getvalue() == "INFO before\nWARNING trouble\n"  # in order, without a loop turn
    await asyncio.sleep(0)
    assert stream.getvalue() == "INFO before\nWARNING trouble\n"  # nothing twice


async def test_a_line_from_another_thread_is_written_at_once(logged: tuple[logging.Logger, CountingStream]) -> None:
    logger, stream = logged
    thread = threading.Thread(target=logger.info, args=("from a thread",))
    thread.start()
    thread.join()
    assert stream.getvalue() == "INFO from a thread\n"


def test_without_a_loop_every_line_is_written_at_once(logged: tuple[logging.Logger, CountingStream]) -> None:
    logger, stream = logged
    logger.info("one")
    assert stream.getvalue() == "INFO one\n"


async def test_flush_writes_what_waits_and_a_new_loop_gets_its_own_turn(
    logged: tuple[logging.Logger, CountingStream],
) -> None:
    logger, stream = logged
    logger.info("waiting")
    logger.handlers[0].flush()  # as logs.flush() before a worker's os._exit
    assert stream.getvalue() == "INFO waiting\n"

    def in_another_loop() -> None:
        async def log_there() -> None:
            logger.info("other loop")
            await asyncio.sleep(0)

        asyncio.run(log_there())

    thread = threading.Thread(target=in_another_loop)
    thread.start()
    thread.join()
    assert stream.getvalue() == "INFO waiting\nINFO other loop\n"


@pytest.mark.parametrize("created", [1_764_979_199.9994, 1_764_979_200.0, 1_764_979_200.5, 1_764_979_261.25])
def test_the_text_format_is_logging_s_own(created: float) -> None:
    plain, cached = logging.Formatter(TEXT_FORMAT), TextFormatter()
    for moment in (created, created + 0.001, created - 1):  # the cache kept across seconds, either way
        record = logging.makeLogRecord({"name": "sluicegate.x", "levelname": "INFO", "msg": "hello"})
        record.created, record.msecs = moment, int((moment - int(moment)) * 1000)
        assert cached.format(record) == plain.format(record)


def test_the_json_time_is_utc_with_milliseconds() -> None:
    record = logging.makeLogRecord({"name": "sluicegate.x", "levelname": "INFO", "msg": "hello"})
    record.created, record.msecs = 1_764_979_261.25, 250
    assert json.loads(JSONFormatter().format(record))["time"] == "2025-12-06T00:01:01.250Z"
