"""Closing the embedded model (the gateway stopping) stops a running generation at its next
token and never blocks the event loop while it waits for the thread."""

from __future__ import annotations

import asyncio
import logging

import pytest

from sluicegate.api.chat_completions.schemas import parse_chat_request
from sluicegate.core.events import TextDelta
from sluicegate.providers.local.config import LocalConfig
from sluicegate.providers.local.provider import LocalProvider
from tests.support.server import LOCAL_MODEL
from tests.support.streams import LONG_JSON


async def test_close_stops_the_running_job_without_blocking_the_loop(caplog: pytest.LogCaptureFixture) -> None:
    provider = LocalProvider(LocalConfig(name=LOCAL_MODEL, provider="local"))
    await provider.start()
    request = parse_chat_request(
        {
            "model": LOCAL_MODEL,
            "messages": [{"role": "user", "content": "Write a long story."}],
            "max_tokens": 1800,
            "stream": True,
            "response_format": LONG_JSON,
        }
    )
    events = provider.stream(request)
    async for batch in events:  # generating now
        if any(isinstance(event, TextDelta) for event in batch):
            break

    turns = 0
    closing = True

    async def ticker() -> None:
        nonlocal turns
        while closing:
            turns += 1
            await asyncio.sleep(0)

    ticking = asyncio.ensure_future(ticker())
    with caplog.at_level(logging.WARNING, logger="sluicegate.local"):
        await provider.close()
    closing = False
    await ticking
    assert turns > 0  # the loop ran other work while close() waited for the thread
    assert not any(f for f in provider._futures if not f.done())
    assert "did not stop" not in caplog.text  # the job stopped at its next token, not at a bound
    await events.aclose()
