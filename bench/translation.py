"""``python -m bench.translation [provider ...] [--n N]``: what translating an upstream's stream costs.

One function per provider feeds a recorded real stream (from ``../shared/fixtures``), one
network read per upstream event, through the gateway's hot path N times and reports microseconds
per upstream event for each stage, cumulatively:

- ``sse+json``: SSE framing and JSON decoding only (what any provider pays);
- ``+parse``: plus the provider's translation into canonical events;
- ``+openai``: plus encoding those events as OpenAI chunks (the OpenAI door).

The translation's own cost is ``+parse`` minus ``sse+json``. Each figure is the best of 5 runs.
Add a provider by adding a function to ``BENCHES``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import orjson

from sluicegate.api.chat_completions.chunks import ChunkEncoder
from sluicegate.core.events import Event
from sluicegate.http.sse import SSEDecoder

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"
RUNS = 5


@dataclass
class Figures:
    provider: str
    recordings: list[str]
    upstream_events: int  # per pass over the recordings
    canonical_events: int
    us_per_event: dict[str, float]  # stage -> µs per upstream event

    def lines(self) -> list[str]:
        stages = "  ".join(f"{stage} {value:.2f}" for stage, value in self.us_per_event.items())
        added = self.us_per_event["+parse"] - self.us_per_event["sse+json"]
        return [
            f"{self.provider}: {self.upstream_events} upstream events -> {self.canonical_events} canonical events"
            f" per pass ({', '.join(self.recordings)})",
            f"  µs per upstream event: {stages}",
            f"  translation alone: {added:.2f} µs per upstream event",
        ]


def _best_us(run: Callable[[], None], n: int) -> float:
    best = float("inf")
    for _ in range(RUNS):
        start = time.perf_counter_ns()
        for _ in range(n):
            run()
        best = min(best, (time.perf_counter_ns() - start) / n / 1000)
    return best


def _measure(
    provider: str,
    recordings: list[str],
    reads: list[bytes],
    parse: Callable[[list[bytes], ChunkEncoder | None], int],
    n: int,
) -> Figures:
    """`parse(reads, encoder)` runs one pass and returns the canonical events it made."""
    events = sum(len(SSEDecoder().feed(read)) for read in reads)

    def decode_only() -> None:
        decoder = SSEDecoder()
        for read in reads:
            for sse in decoder.feed(read):
                orjson.loads(sse.data)

    canonical = parse(reads, None)
    stages = {
        "sse+json": _best_us(decode_only, n) / events,
        "+parse": _best_us(lambda: parse(reads, None), n) / events,
        "+openai": _best_us(lambda: parse(reads, ChunkEncoder("chatcmpl-b", 1, "m", True)), n) / events,
    }
    return Figures(provider, recordings, events, canonical, stages)


def bench_anthropic(n: int) -> Figures:
    from sluicegate.providers.anthropic.stream import MessageStreamParser

    names = ["stream-b-fallback.sse", "tool_use_response.txt", "stream-a-refusal.sse"]
    reads: list[bytes] = []
    for name in names:
        raw = (FIXTURES / "anthropic-sdk-python" / name).read_bytes()
        reads += [block + b"\n\n" for block in raw.split(b"\n\n") if block.strip()]  # one event per read

    def parse(chunks: list[bytes], encoder: ChunkEncoder | None) -> int:
        made = 0
        decoder = SSEDecoder()
        parser = MessageStreamParser("bench")
        for read in chunks:
            batch: list[Event] = []
            for sse in decoder.feed(read):
                if sse.data and sse.data[0] == "{":
                    event = orjson.loads(sse.data)
                    if event.get("type") == "message_start":  # the recordings follow one another
                        parser = MessageStreamParser("bench")
                    parser.parse(event, batch)
            made += len(batch)
            if encoder is not None and batch:
                encoder.encode_batch(batch)
        return made

    return _measure("anthropic", names, reads, parse, n)


BENCHES: dict[str, Callable[[int], Figures]] = {"anthropic": bench_anthropic}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("providers", nargs="*", help=f"any of {', '.join(BENCHES)} (default: all)")
    parser.add_argument("--n", type=int, default=500, help="passes over the recordings per run")
    args = parser.parse_args(argv)
    if not FIXTURES.is_dir():
        print(f"recordings not found at {FIXTURES}", file=sys.stderr)
        return 1
    unknown = set(args.providers) - set(BENCHES)
    if unknown:
        parser.error(f"unknown provider(s): {', '.join(sorted(unknown))}; known: {', '.join(BENCHES)}")
    for name in args.providers or list(BENCHES):
        print("\n".join(BENCHES[name](args.n).lines()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
