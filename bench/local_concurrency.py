"""The embedded model under concurrent load and over a long conversation, beside llama-server.

Both servers are driven through the same OpenAI-compatible streaming endpoint with the same
prompts, greedy sampling, repeat penalty and token budget:

- concurrency: 1, 2, 4, 8 and 16 streams at once, each count three times (the median round is
  reported); aggregate tokens/s (every stream's tokens over
  the wall time of the round), time to first token and inter-chunk latency p50/p99; then short
  requests arriving while 7 long answers are being written, against short requests alone: ten
  of each, every one a question not asked before (only the chat template's opening is cached,
  as for a new user's question), medians compared;
- multi-turn: a 10-turn conversation under a ~1,000-token system prompt, time to first token per
  turn, with prefix reuse and without (llama-server: `cache_prompt`; sluicegate: the model
  entry's `prefix_cache`).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

PROMPTS = [
    "Write a short paragraph about why lighthouses were important for ships.",
    "Explain how a steam engine works, in simple words.",
    "Describe a busy harbour at dawn.",
    "Tell a short story about a cat who learns to sail.",
    "What are the main parts of a sailing ship?",
    "Give some advice to a new lighthouse keeper.",
    "Describe the sound of the sea during a storm.",
    "Why do tides happen? Explain briefly.",
]
NAMES = [
    "Ana", "Ben", "Chloe", "Dmitri", "Esi", "Farid", "Greta", "Hiro", "Ines", "Jonas",
    "Kofi", "Lena", "Mateo", "Nadia", "Omar", "Priya", "Quentin", "Rosa", "Sven", "Tao",
]
SHORT_SAMPLES = 10
SYSTEM_RULE = "Answer as a patient guide to the history of ships, harbours and lighthouses; be brief and exact."
TURNS = [
    "Who built the first lighthouse?", "How tall was it?", "What fuel did it burn?", "When did it fall?",
    "Which lighthouse came next?", "How were lenses improved?", "Who was Fresnel?", "What replaced oil lamps?",
    "Are lighthouses still used?", "Summarise our talk in one sentence.",
]


def system_prompt() -> str:
    """About 1,000 tokens of instructions, as a long system prompt is in practice."""
    return " ".join(f"{SYSTEM_RULE} Rule {i}: keep answers under three sentences." for i in range(45))


@dataclass
class Stream:
    ttft_s: float
    total_s: float
    tokens: int
    gaps_s: list[float] = field(default_factory=list)
    text: str = ""


@dataclass
class Target:
    name: str
    base_url: str  # ends in /v1
    headers: dict[str, str]
    model: str
    extra: dict[str, Any] = field(default_factory=dict)  # sampling fields the server needs named


async def stream_once(client: httpx.AsyncClient, target: Target, messages: list[dict[str, str]], max_tokens: int,
                      **fields: Any) -> Stream:
    body = {
        "model": target.model, "messages": messages, "stream": True, "max_tokens": max_tokens,
        "temperature": 0.0, "seed": 1234, "stream_options": {"include_usage": True}, **target.extra, **fields,
    }
    started = time.perf_counter()
    first: float | None = None
    last = started
    gaps: list[float] = []
    chunks = 0
    usage_tokens: int | None = None
    parts: list[str] = []
    async with client.stream("POST", f"{target.base_url}/chat/completions", json=body, headers=target.headers,
                             timeout=600) as response:
        if response.status_code != 200:
            raise RuntimeError(f"{target.name}: HTTP {response.status_code} {(await response.aread())[:300]!r}")
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = json.loads(line[6:])
            if event.get("usage"):
                usage_tokens = int(event["usage"]["completion_tokens"])
            for choice in event.get("choices") or []:
                content = (choice.get("delta") or {}).get("content")
                if content:
                    now = time.perf_counter()
                    if first is None:
                        first = now
                    else:
                        gaps.append(now - last)
                    last = now
                    chunks += 1
                    parts.append(content)
    done = time.perf_counter()
    first = first if first is not None else done
    return Stream(first - started, done - started, usage_tokens or chunks, gaps, "".join(parts))


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def concurrency_round(target: Target, streams: int, max_tokens: int) -> dict[str, Any]:
    async with httpx.AsyncClient() as client:
        started = time.perf_counter()
        results = await asyncio.gather(*(
            stream_once(client, target, [{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}], max_tokens)
            for i in range(streams)
        ))
        wall = time.perf_counter() - started
    tokens = sum(r.tokens for r in results)
    ttfts = [r.ttft_s * 1000 for r in results]
    gaps = [g * 1000 for r in results for g in r.gaps_s]
    return {
        "streams": streams, "tokens": tokens, "wall_s": wall, "aggregate_tokens_per_s": tokens / wall,
        "ttft_ms_p50": pct(ttfts, 0.5), "ttft_ms_p99": pct(ttfts, 0.99),
        "itl_ms_p50": pct(gaps, 0.5), "itl_ms_p99": pct(gaps, 0.99),
    }


async def short_under_load(target: Target, long_tokens: int = 400) -> dict[str, Any]:
    """TTFT of short requests alone, then while 7 long answers are being written. Each is a
    new question, so alone and beside the answers read the same part of their prompts; the
    first of each kind is one the slots' caches have never seen either way."""
    async def short(name: str) -> float:
        # a connection each: llama-server closes a kept-alive connection after 5 requests
        async with httpx.AsyncClient() as own:
            return (await stream_once(own, target, [{"role": "user", "content": f"Say hello to {name}."}], 8)).ttft_s

    async with httpx.AsyncClient() as client:
        alone = [await short(name) for name in NAMES[:SHORT_SAMPLES]]
        longs = [
            asyncio.ensure_future(stream_once(
                client, target, [{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}], long_tokens))
            for i in range(7)
        ]
        await asyncio.sleep(3.0)  # all seven are generating by now
        loaded = []
        for name in NAMES[SHORT_SAMPLES : 2 * SHORT_SAMPLES]:
            loaded.append(await short(name))
            await asyncio.sleep(0.25)  # arrivals at unrelated moments of the long answers' steps
        for task in longs:
            task.cancel()
        await asyncio.gather(*longs, return_exceptions=True)
    lone, busy = statistics.median(alone) * 1000, statistics.median(loaded) * 1000
    return {
        "lone_ttft_ms": lone, "under_7_long_ttft_ms": busy, "ratio": busy / lone,
        "lone_ttft_ms_samples": [s * 1000 for s in alone], "under_7_long_ttft_ms_samples": [s * 1000 for s in loaded],
    }


async def multi_turn(target: Target, max_tokens: int, **fields: Any) -> dict[str, Any]:
    messages = [{"role": "system", "content": system_prompt()}]
    ttfts: list[float] = []
    for question in TURNS:
        messages.append({"role": "user", "content": question})
        # a connection per turn: llama-server closes a kept-alive connection after 5 requests
        async with httpx.AsyncClient() as client:
            result = await stream_once(client, target, messages, max_tokens, **fields)
        ttfts.append(result.ttft_s * 1000)
        messages.append({"role": "assistant", "content": result.text})
    return {"ttft_ms_by_turn": ttfts, "turn1_ttft_ms": ttfts[0], "turn10_ttft_ms": ttfts[-1]}


async def warm(target: Target) -> None:
    async with httpx.AsyncClient() as client:
        await stream_once(client, target, [{"role": "user", "content": "Hi"}], 4)
