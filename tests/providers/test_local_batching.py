"""The embedded model serving several requests at once: streams interleave, each keeps its
own settings, a cancelled one frees its slot, cached prompt prefixes are reused and reported,
and the waiting line takes keys in turn."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from sluicegate.api.chat_completions.schemas import parse_chat_request
from sluicegate.core.events import Event, Finish, TextDelta, Usage
from sluicegate.providers.local.config import LocalConfig
from sluicegate.providers.local.fairqueue import FairQueue
from sluicegate.providers.local.provider import LocalProvider
from tests.support.server import LOCAL_MODEL, start_gateway

STORY = [{"role": "user", "content": "Write a long story about a lighthouse keeper and the ships she saves."}]
# a system prompt long enough that reusing it is worth reporting (several hundred tokens)
SYSTEM = " ".join(
    f"Rule {i}: answer politely, briefly and truthfully about ships, harbours and lighthouses." for i in range(40)
)
SUM = {
    "type": "object",
    "properties": {"answer": {"type": "integer"}},
    "required": ["answer"],
    "additionalProperties": False,
}


@pytest.fixture
async def provider() -> AsyncIterator[LocalProvider]:
    local = LocalProvider(LocalConfig(name=LOCAL_MODEL, provider="local", parallel=4))
    await local.start()
    yield local
    await local.close()


def chat(**fields: Any) -> Any:
    return parse_chat_request({"model": LOCAL_MODEL, "stream": True, **fields})


async def events_of(provider: LocalProvider, request: Any) -> list[Event]:
    found: list[Event] = []
    async for batch in provider.stream(request):
        found.extend(batch)
    return found


def text_of(events: list[Event]) -> str:
    return "".join(event.text for event in events if isinstance(event, TextDelta))


def usage_of(events: list[Event]) -> Usage:
    return next(event for event in events if isinstance(event, Usage))


async def test_a_second_stream_starts_before_the_first_ends(provider: LocalProvider) -> None:
    order: list[str] = []
    long_started = asyncio.Event()

    async def run(name: str, request: Any) -> None:
        async for batch in provider.stream(request):
            for event in batch:
                if isinstance(event, TextDelta):
                    order.append(f"{name}:token")
                    long_started.set()
                elif isinstance(event, Finish):
                    order.append(f"{name}:end")

    long = asyncio.ensure_future(run("long", chat(messages=STORY, max_tokens=300, temperature=0)))
    await long_started.wait()
    await run("short", chat(messages=[{"role": "user", "content": "Say hi."}], max_tokens=5))
    await long
    assert order.index("short:token") < order.index("long:end"), order
    assert order.index("short:end") < order.index("long:end"), order  # it did not wait for the long one


async def test_concurrent_streams_keep_their_own_settings(provider: LocalProvider) -> None:
    # Greedy text beside other sequences is not compared with the text alone: in a cache shared
    # by the slots, a sequence's cells sit among others', which changes the order of float sums
    # in attention, and a near tie can then go the other way (llama-server behaves the same).
    results = await asyncio.gather(
        events_of(provider, chat(messages=STORY, max_tokens=40, temperature=0, stop=[" "])),
        events_of(
            provider,
            chat(
                messages=[{"role": "user", "content": "What is 2 + 2? Answer in JSON."}],
                max_tokens=32,
                temperature=0,
                response_format={"type": "json_schema", "json_schema": {"name": "sum", "schema": SUM}},
            ),
        ),
        events_of(provider, chat(messages=STORY, max_tokens=10, logprobs=True, top_logprobs=3)),
        events_of(provider, chat(messages=STORY, max_tokens=7, temperature=1.0, seed=7)),
        events_of(provider, chat(messages=STORY, max_tokens=40, logit_bias={"0": -100})),
    )
    stopped, json_mode, with_logprobs, short, plain = results
    finish = next(event for event in stopped if isinstance(event, Finish))
    assert finish.reason == "stop" and finish.stop_sequence == " " and " " not in text_of(stopped)
    parsed = json.loads(text_of(json_mode))  # its grammar held beside four free answers
    assert set(parsed) == {"answer"} and isinstance(parsed["answer"], int)
    entries = [entry for event in with_logprobs if isinstance(event, TextDelta) for entry in event.logprobs or []]
    assert len(entries) == usage_of(with_logprobs).completion_tokens == 10
    assert all(len(entry["top_logprobs"]) == 3 and entry["logprob"] <= 0 for entry in entries)
    assert not any(event.logprobs for event in plain if isinstance(event, TextDelta))  # only where asked
    assert usage_of(short).completion_tokens == 7  # its own budget, counted exactly
    assert next(event for event in short if isinstance(event, Finish)).reason == "length"


async def test_n_choices_share_the_prompt(provider: LocalProvider) -> None:
    events = await events_of(provider, chat(messages=STORY, max_tokens=8, n=3, temperature=1.0, seed=11))
    finishes = [event for event in events if isinstance(event, Finish)]
    assert sorted(finish.choice for finish in finishes) == [0, 1, 2]
    per_choice = [event.choice for event in events if isinstance(event, TextDelta)]
    assert set(per_choice) == {0, 1, 2}
    assert 3 <= usage_of(events).completion_tokens <= 24  # every choice's tokens, counted once


async def test_a_cancelled_stream_frees_its_slot() -> None:
    local = LocalProvider(LocalConfig(name=LOCAL_MODEL, provider="local", parallel=1))
    await local.start()
    try:
        stream = local.stream(chat(messages=STORY, max_tokens=1500, temperature=1))
        async for batch in stream:
            if any(isinstance(event, TextDelta) for event in batch):
                break
        await stream.aclose()  # the client went away
        engine = local._model.engine if local._model else None
        assert engine is not None
        for _ in range(500):
            if all(slot.work is None for slot in engine._slots):
                break
            await asyncio.sleep(0.01)
        assert all(slot.work is None and not slot.cached for slot in engine._slots)  # its cells freed too
        # the one slot serves the next request to its end
        after = await events_of(local, chat(messages=[{"role": "user", "content": "Hi"}], max_tokens=4))
        assert any(isinstance(event, Finish) for event in after)
    finally:
        await local.close()


async def test_a_shared_system_prompt_is_reused_and_reported(provider: LocalProvider) -> None:
    first = await events_of(
        provider,
        chat(messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Hi"}], max_tokens=4),
    )
    # the next request, while another holds the slot it was served from, still finds the prefix
    busy = asyncio.ensure_future(events_of(provider, chat(messages=STORY, max_tokens=60)))
    second = await events_of(
        provider,
        chat(
            messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": "What is a harbour?"}],
            max_tokens=4,
        ),
    )
    await busy
    system_tokens = usage_of(first).prompt_tokens - 10  # the template's framing of "Hi" is under 10 tokens
    assert usage_of(first).cached_tokens < system_tokens
    assert system_tokens <= usage_of(second).cached_tokens < usage_of(second).prompt_tokens


async def test_an_unrelated_prompt_leaves_a_cached_system_prompt_alone(provider: LocalProvider) -> None:
    """A prompt sharing only the template's first tokens with a slot's cache takes a free slot
    instead of cutting that cache down to those tokens."""
    system = [{"role": "system", "content": SYSTEM}]
    first = await events_of(provider, chat(messages=[*system, {"role": "user", "content": "Hi"}], max_tokens=4))
    await events_of(provider, chat(messages=STORY, max_tokens=4))
    again = await events_of(provider, chat(messages=[*system, {"role": "user", "content": "Hello"}], max_tokens=4))
    system_tokens = usage_of(first).prompt_tokens - 10  # the template's framing of "Hi" is under 10 tokens
    assert system_tokens <= usage_of(again).cached_tokens


def test_the_waiting_line_takes_keys_in_turn() -> None:
    line: FairQueue[str] = FairQueue()
    for i in range(4):
        line.push("burst", f"burst-{i}")
    line.push("other", "other-0")
    line.push("third", "third-0")
    line.push("other", "other-1")
    served = [line.pop() for _ in range(len(line))]
    assert served == ["burst-0", "other-0", "third-0", "burst-1", "other-1", "burst-2", "burst-3"]


def test_cached_tokens_through_every_door(tmp_path: Path) -> None:
    gateway = start_gateway(tmp_path, {"models": [{"name": LOCAL_MODEL, "provider": "local", "parallel": 2}]})
    try:
        client = openai.OpenAI(base_url=gateway.v1, api_key=gateway.api_key)
        messages: list[Any] = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Hi"}]
        client.chat.completions.create(model=LOCAL_MODEL, messages=messages, max_tokens=3)
        again = client.chat.completions.create(model=LOCAL_MODEL, messages=messages, max_tokens=3)
        assert again.usage is not None and again.usage.prompt_tokens_details is not None
        cached = again.usage.prompt_tokens_details.cached_tokens or 0
        assert 0 < cached < again.usage.prompt_tokens
        response = client.responses.create(model=LOCAL_MODEL, instructions=SYSTEM, input="Hi", max_output_tokens=16)
        assert response.usage is not None and response.usage.input_tokens_details.cached_tokens > 0
        claude = anthropic.Anthropic(base_url=gateway.base_url, api_key=gateway.api_key)
        message = claude.messages.create(
            model=LOCAL_MODEL, system=SYSTEM, messages=[{"role": "user", "content": "Hi"}], max_tokens=3
        )
        assert (message.usage.cache_read_input_tokens or 0) > 0
    finally:
        gateway.stop()
