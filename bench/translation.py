"""``python -m bench.translation [provider ...] [--n N]``: what translating an upstream's stream costs.

One function per provider in ``BENCHES`` names recorded real streams (from ``../shared/fixtures``)
and its translation (decoded payloads of each network read -> canonical event batches). Each
recording is fed one network read per upstream event, N passes per run, best of 7 runs, and the
three stages of the hot path are timed apart, in microseconds per upstream event:

- ``sse+json``: SSE framing and JSON decoding (what any provider pays);
- ``translate``: the provider's translation into canonical events (the figure this bench is for);
- ``openai``: encoding those events as OpenAI chunks (the OpenAI door).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from sluicegate.api.chat_completions.chunks import ChunkEncoder
from sluicegate.core.events import Batch, Event
from sluicegate.http.sse import SSEDecoder

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"
RUNS = 7

Translate = Callable[[list[list[Any]]], list[Batch]]  # payloads per read -> canonical batches


@dataclass
class Figures:
    provider: str
    recordings: list[str]
    upstream_events: int  # per pass over the recordings
    canonical_events: int
    us_per_event: dict[str, float]  # stage -> µs per upstream event

    def lines(self) -> list[str]:
        stages = "  ".join(f"{stage} {value:.2f}" for stage, value in self.us_per_event.items())
        return [
            f"{self.provider}: {self.upstream_events} upstream events -> {self.canonical_events} canonical"
            f" events per pass ({', '.join(self.recordings)})",
            f"  µs per upstream event: {stages}",
            f"  translation alone: {self.us_per_event['translate']:.2f} µs per upstream event",
        ]


def _best_us(run: Callable[[], object], n: int) -> float:
    best = float("inf")
    for _ in range(RUNS):
        start = time.perf_counter_ns()
        for _ in range(n):
            run()
        best = min(best, (time.perf_counter_ns() - start) / n / 1000)
    return best


def decode(reads: list[bytes]) -> list[list[Any]]:
    """Each read's SSE data payloads, JSON decoded (`[DONE]` and other non-JSON kept as text)."""
    decoder = SSEDecoder()
    out: list[list[Any]] = []
    for read in reads:
        out.append([orjson.loads(e.data) if e.data[:1] in ("{", "[") and e.data != "[DONE]" else e.data for e in decoder.feed(read)])
    return out


def encode(batches: list[Batch]) -> int:
    encoder = ChunkEncoder("chatcmpl-bench", 1, "m", True)
    return sum(len(encoder.encode_batch(batch)) for batch in batches) + len(encoder.close())


def measure(
    provider: str, recordings: list[str], reads: list[bytes], translate: Translate, n: int
) -> Figures:
    payloads = decode(reads)
    batches = translate(payloads)
    events = sum(len(read) for read in payloads)
    stages = {
        "sse+json": _best_us(lambda: decode(reads), n) / events,
        "translate": _best_us(lambda: translate(payloads), n) / events,
        "openai": _best_us(lambda: encode(batches), n) / events,
    }
    return Figures(provider, recordings, events, sum(len(batch) for batch in batches), stages)


def sse_reads(path: Path) -> list[bytes]:
    """A recording already framed as SSE, one event per read."""
    return [block + b"\n\n" for block in path.read_bytes().split(b"\n\n") if block.strip()]


def bench_anthropic(n: int) -> Figures:
    from sluicegate.providers.anthropic.stream import MessageStreamParser

    names = ["stream-b-fallback.sse", "tool_use_response.txt", "stream-a-refusal.sse"]
    reads = [read for name in names for read in sse_reads(FIXTURES / "anthropic-sdk-python" / name)]

    def translate(payloads: list[list[Any]]) -> list[Batch]:
        out: list[Batch] = []
        parser = MessageStreamParser("bench")
        for read in payloads:
            batch: list[Event] = []
            for payload in read:
                if payload.get("type") == "message_start":  # the recordings follow one another
                    parser = MessageStreamParser("bench")
                parser.parse(payload, batch)
            out.append(batch)
        return out

    return measure("anthropic", names, reads, translate, n)


def chunk_reads(path: Path) -> list[bytes]:
    """A vercel-ai recording (one JSON payload a line) framed as SSE, one event per read."""
    lines = [line for line in path.read_bytes().splitlines() if line.strip()]
    return [b"data: " + line + b"\n\n" for line in lines] + [b"data: [DONE]\n\n"]


def bench_openai(n: int) -> Figures:
    from sluicegate.providers.openai.chunks import ChunkParser

    names = ["openai-text.chunks.txt", "xai-tool-call.chunks.txt", "deepseek-reasoning.chunks.txt"]
    reads = [read for name in names for read in chunk_reads(FIXTURES / "vercel-ai" / name)]

    def translate(payloads: list[list[Any]]) -> list[Batch]:
        out: list[Batch] = []
        parser = ChunkParser("bench")
        for read in payloads:
            batch: list[Event] = []
            for payload in read:
                if payload == "[DONE]":  # the recordings follow one another
                    batch += parser.close(True)
                    parser = ChunkParser("bench")
                else:
                    batch += parser.parse(payload)
            out.append(batch)
        return out

    return measure("openai", names, reads, translate, n)


def bench_gemini(n: int) -> Figures:
    from sluicegate.providers.gemini.stream import StreamParser

    names = [
        "google-text.chunks.txt",
        "google-reasoning.chunks.txt",
        "google-tool-call.chunks.txt",
        "google-stream-tool-call-arguments.chunks.txt",
        "google-vertex-stream-tool-call-arguments-nested.1.chunks.txt",
    ]
    reads = []
    for name in names:  # framed as Google frames them: CRLF, no [DONE]
        lines = (FIXTURES / "vercel-ai" / name).read_bytes().splitlines()
        reads += [b"data: " + line + b"\r\n\r\n" for line in lines if line.strip()]

    def translate(payloads: list[list[Any]]) -> list[Batch]:
        out: list[Batch] = []
        parser, answer = StreamParser("bench"), None
        for read in payloads:
            batch: list[Event] = []
            for payload in read:
                if payload.get("responseId") != answer:  # the recordings follow one another
                    if answer is not None:
                        out[-1] += parser.close()
                    parser, answer = StreamParser("bench"), payload.get("responseId")
                batch += parser.parse(payload)
            out.append(batch)
        out[-1] += parser.close()
        return out

    return measure("gemini", names, reads, translate, n)


BENCHES: dict[str, Callable[[int], Figures]] = {
    "anthropic": bench_anthropic,
    "openai": bench_openai,
    "gemini": bench_gemini,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("providers", nargs="*", help=f"any of {', '.join(BENCHES)} (default: all)")
    parser.add_argument("--n", type=int, default=500, help="passes over the recordings per run")
    args = parser.parse_args(argv)
    unknown = set(args.providers) - set(BENCHES)
    if unknown:
        parser.error(f"unknown provider(s): {', '.join(sorted(unknown))}; known: {', '.join(BENCHES)}")
    if not FIXTURES.is_dir():
        print(f"recordings not found at {FIXTURES}", file=sys.stderr)
        return 1
    for name in args.providers or list(BENCHES):
        print("\n".join(BENCHES[name](args.n).lines()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
