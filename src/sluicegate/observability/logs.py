"""The process's log format: text lines by default, one JSON object per line with
`serve --log-format json`. Every logger (the gateway's, uvicorn's, gunicorn's) goes through
the one handler on the root logger, on stderr.

A record may carry `extra={"fields": {...}}`: structured fields (the access log's request id,
status, timings...). The text format shows the message alone (it already says them); the JSON
format puts the fields at the top level of the object, beside time, level, logger, message.

Every request writes an access line, so a line must be cheap (a measurable share of a proxied
short stream's CPU; bench/results/levers.md, lever I): the time's text is made once a second, records skip the thread and
process names no format shows, and lines logged on the event loop are written together when the
loop's turn ends, one write for all the requests that finished in it. Warnings and errors, and
lines of other threads, are written at once (after what waits before them); a clean stop and a
worker's exit write what waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import Callable
from typing import Literal, TextIO

import orjson

LogFormat = Literal["text", "json"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_OWN_HANDLERS = (
    "uvicorn",
    "uvicorn.error",
    "uvicorn.access",
    "uvicorn.asgi",
    "gunicorn.error",
    "gunicorn.access",
)


class _PerSecond:
    """A time's text to the second, made once a second (strftime on every line was a tenth of
    an access line's cost)."""

    def __init__(self, make: Callable[[float], str]) -> None:
        self._make = make
        self._last: tuple[int, str] = (-1, "")

    def __call__(self, created: float) -> str:
        second, text = self._last
        if int(created) != second:
            text = self._make(created)
            self._last = (int(created), text)
        return text


class TextFormatter(logging.Formatter):
    """TEXT_FORMAT (`2026-12-06 01:28:44,325`), as logging.Formatter writes it."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)
        self._second = _PerSecond(
            lambda created: time.strftime(self.default_time_format, self.converter(created))
        )

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return f"{self._second(record.created)},{int(record.msecs):03d}"


class JSONFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__()
        self._second = _PerSecond(lambda created: time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)))

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "time": f"{self._second(record.created)}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            out.update(fields)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


def formatter(log_format: LogFormat) -> logging.Formatter:
    return JSONFormatter() if log_format == "json" else TextFormatter()


class LoopBatchedHandler(logging.StreamHandler[TextIO]):
    """Lines logged on an event loop below WARNING wait for the end of the loop's turn and go
    out in one write; anything else is written at once, with what waits before it."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._waiting: list[str] = []
        self._scheduled_on: asyncio.AbstractEventLoop | None = None  # a flush is due on this loop

    def emit(self, record: logging.LogRecord) -> None:  # called with self.lock held
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        self._waiting.append(line)
        if record.levelno < logging.WARNING:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
            if loop is not None:
                if self._scheduled_on is not loop:
                    self._scheduled_on = loop
                    loop.call_soon(self.flush)
                return
        self.flush()

    def flush(self) -> None:
        with self.lock if self.lock is not None else contextlib.nullcontext():
            waiting, self._waiting = self._waiting, []
            self._scheduled_on = None
            if waiting:
                try:
                    self.stream.write(self.terminator.join(waiting) + self.terminator)
                    self.stream.flush()
                except Exception:  # a closed or broken stream: as StreamHandler would report it
                    self.handleError(logging.makeLogRecord({"msg": waiting[-1]}))
            elif hasattr(self.stream, "flush"):
                self.stream.flush()


def flush() -> None:
    """Write what waits in the root logger's handlers (before a process leaves by os._exit)."""
    for handler in logging.getLogger().handlers:
        handler.flush()


def configure(level: str = "info", log_format: LogFormat = "text") -> None:
    # what no format of ours shows: not looked up for every record
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    setattr(logging, "_srcfile", None)  # noqa: B010  no caller's file and line: the logging HOWTO's advice
    if hasattr(logging, "logAsyncioTasks"):  # Python 3.12+
        setattr(logging, "logAsyncioTasks", False)  # noqa: B010
    handler = LoopBatchedHandler(sys.stderr)
    handler.setFormatter(formatter(log_format))
    root = logging.getLogger()
    root.handlers = [handler]
    numeric = logging.getLevelName(level.upper())  # "TRACE" exists once uvicorn is imported
    root.setLevel(numeric if isinstance(numeric, int) else 5 if level.lower() == "trace" else logging.INFO)
    for name in _OWN_HANDLERS:
        logger = logging.getLogger(name)
        logger.handlers = []
        logger.propagate = True
