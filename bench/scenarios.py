"""Benchmark scenarios and the runner that drives every target through them, interleaved.

Targets are interleaved run by run (and the order rotates) so that machine noise, thermal drift or a
background job hits all of them rather than whichever happened to run last.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from bench.loadgen import LoadSpec
from bench.processes import RssSampler, tree_cpu_s, tree_rss
from bench.targets import DIRECT, Target

REPO_ROOT = Path(__file__).resolve().parent.parent
ADDED_P99_BUDGET_MS = 50.0
COLLAPSE_SUCCESS_PCT = 50.0
IDLE_CPU_FRACTION = 0.1  # a target using under 10% of one core is idle
MB = 1024 * 1024

Kind = Literal["sweep", "max_rate", "memory"]


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    kind: Kind
    model: str  # the mock reads chunks/timing from the model name, so every target routes the same way
    stream: bool
    rates: tuple[float, ...] = ()
    duration_s: float = 8.0
    warmup_s: float = 2.0
    timeout_s: float = 10.0
    start_rate: float = 200.0
    rate_cap: float = 12800.0
    max_probes: int = 9
    rate_precision: float = 0.15  # the search stops when the next failing rate is this close (fraction)
    streams: int = 1000
    ramp_s: float = 5.0


ALIASES = {"1": "stream", "2": "nonstream", "3": "maxrate", "4": "memory"}


def build_scenarios(quick: bool) -> dict[str, Scenario]:
    """The full set takes ~20 minutes; ``quick`` keeps every scenario but shortens it (a few minutes)."""
    rates = (50.0, 200.0, 600.0) if quick else (50.0, 100.0, 200.0, 400.0, 600.0)
    dur, warm, timeout = (2.5, 0.5, 4.0) if quick else (8.0, 2.0, 10.0)
    return {
        "stream": Scenario(
            "stream",
            "1: streams of 20 chunks over 1 s",
            "sweep",
            "mock-c20-t1000",
            True,
            rates,
            dur,
            warm,
            timeout,
        ),
        "nonstream": Scenario(
            "nonstream",
            "2: non-streaming answers after 1 s",
            "sweep",
            "mock-c20-t1000",
            False,
            (200.0,) if quick else rates,
            dur,
            warm,
            timeout,
        ),
        "maxrate": Scenario(
            "maxrate",
            "3: short streams (20 chunks, no delay), highest sustained rate",
            "max_rate",
            "mock-c20-t0",
            True,
            duration_s=2.0 if quick else 4.0,
            warmup_s=0.5 if quick else 1.0,
            timeout_s=2.0 if quick else 3.0,
            start_rate=400.0 if quick else 200.0,
            rate_cap=3200.0 if quick else 12800.0,
            max_probes=3 if quick else 9,
        ),
        "memory": Scenario(
            "memory",
            "4: 1,000 concurrent idle-ish streams (1 chunk/s)",
            "memory",
            "mock-c6-t6000" if quick else "mock-c20-t20000",
            True,
            timeout_s=9.0 if quick else 30.0,
            streams=1000,
            ramp_s=2.0 if quick else 5.0,
        ),
    }


def select(scenarios: dict[str, Scenario], names: str | None) -> list[Scenario]:
    if not names:
        return list(scenarios.values())
    chosen = []
    for raw in names.split(","):
        name = ALIASES.get(raw.strip(), raw.strip())
        if name not in scenarios:
            raise SystemExit(f"unknown scenario {raw!r}; choose from {', '.join(scenarios)} or 1-4")
        chosen.append(scenarios[name])
    return chosen


def request_body(model: str, stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": "Say hello to the benchmark."}],
        "stream": stream,
        "max_tokens": 64,
    }
    if stream:
        body["stream_options"] = {"include_usage": True}
    return body


@dataclass
class RunRecord:
    """One load-generator run against one target, plus the server-side resource figures."""

    scenario: str
    target: str
    offered_rps: float
    load: dict[str, Any] = field(default_factory=dict)
    baseline_rss_mb: float = 0.0
    peak_rss_mb: float = 0.0
    peak_pss_mb: float = 0.0
    cpu_s: float = 0.0
    cpu_s_per_1k: float = float("nan")
    processes: int = 0
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok_rate(self) -> float:
        return float(self.load.get("completed_rps", 0.0))


def passes_sustained(record: RunRecord, ref_p99_ms: float) -> bool:
    """Scenario 3 criterion: every request succeeded, p99 within 50 ms of unloaded direct, rate kept up."""
    load = record.load
    if record.error or not load or load["ok"] != load["scheduled"]:
        return False
    p99 = load["total_ms"]["p99"]
    return bool(
        p99 <= ref_p99_ms + ADDED_P99_BUDGET_MS and load["completed_rps"] >= 0.95 * record.offered_rps
    )


class RateSearch:
    """Find the highest passing rate: double from ``start`` until a failure, then bisect; bounded probes."""

    def __init__(
        self, start: float, cap: float, max_probes: int, floor: float = 25.0, precision: float = 0.15
    ):
        self.cap, self.max_probes, self.floor, self.precision = cap, max_probes, floor, precision
        self.best_pass: float | None = None
        self.lowest_fail: float | None = None
        self.probes = 0
        self.next_rate: float | None = min(start, cap)

    @property
    def done(self) -> bool:
        return self.next_rate is None

    @property
    def result(self) -> float:
        return self.best_pass or 0.0

    def record(self, rate: float, passed: bool) -> None:
        self.probes += 1
        if passed:
            self.best_pass = max(self.best_pass or 0.0, rate)
        else:
            self.lowest_fail = min(self.lowest_fail or float("inf"), rate)
        self.next_rate = self._choose()

    def _choose(self) -> float | None:
        if self.probes >= self.max_probes:
            return None
        if self.lowest_fail is None:
            assert self.best_pass is not None
            if self.best_pass >= self.cap:
                return None
            return min(self.best_pass * 2, self.cap)
        if self.best_pass is None:
            lower = self.lowest_fail / 2
            return lower if lower >= self.floor else None
        if self.lowest_fail - self.best_pass <= self.precision * self.best_pass:
            return None
        return float(round((self.best_pass + self.lowest_fail) / 2))


Log = Callable[[str], None]


class Runner:
    """Runs the load generator in its own process against a target and samples the target's tree."""

    def __init__(
        self, targets: Sequence[Target], pause_s: float, log: Log, settle_max_s: float = 30.0
    ) -> None:
        self.targets = [t for t in targets if t.ok]
        self.pause_s = pause_s
        self.settle_max_s = settle_max_s
        self.log = log
        self.records: list[RunRecord] = []
        self.max_rates: dict[str, float] = {}
        self.lowest_fails: dict[str, float | None] = {}  # None: no probe failed (a lower bound only)
        self.reference_p99_ms: float | None = None

    def run_one(
        self,
        scenario: Scenario,
        target: Target,
        rate: float,
        duration_s: float,
        warmup_s: float,
        max_connections: int = 4096,
        label: str | None = None,
    ) -> RunRecord:
        spec = LoadSpec(
            url=target.chat_url,
            body=request_body(scenario.model, scenario.stream),
            rate=rate,
            duration_s=duration_s,
            warmup_s=warmup_s,
            headers=target.headers,
            timeout_s=scenario.timeout_s,
            max_connections=max_connections,
        )
        record = RunRecord(label or scenario.key, target.name, rate)
        pid = target.root_pid
        record.baseline_rss_mb = tree_rss(pid) / MB
        cpu0 = tree_cpu_s(pid)
        bound = warmup_s + duration_s + scenario.timeout_s + 30
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        with RssSampler(pid) as sampler:
            record.processes = len(_children(pid)) + 1
            try:
                proc = subprocess.run(
                    [sys.executable, "-m", "bench.loadgen", json.dumps(asdict(spec))],
                    capture_output=True,
                    text=True,
                    timeout=bound,
                    cwd=REPO_ROOT,
                    env=env,
                )
                if proc.returncode != 0:
                    record.error = f"load generator failed: {proc.stderr[-400:]}"
                else:
                    record.load = json.loads(proc.stdout.strip().splitlines()[-1])
                    for key in ("raw_ttfb_s", "raw_total_s"):
                        record.load.pop(key, None)
            except subprocess.TimeoutExpired:
                record.error = f"load generator exceeded {bound:.0f}s"
        record.peak_rss_mb = sampler.peak / MB
        record.peak_pss_mb = sampler.peak_pss / MB
        record.cpu_s = tree_cpu_s(pid) - cpu0
        ok = record.load.get("ok", 0)
        if ok:
            record.cpu_s_per_1k = record.cpu_s / ok * 1000
        self.records.append(record)
        self._print(record)
        record.extra["settle_s"] = self.settle(target)
        return record

    def settle(self, target: Target) -> float:
        """Wait (bounded) until the target's tree is idle again: an overloaded gateway keeps working
        through its backlog after the generator gave up, and that must not land on the next target."""
        started = time.monotonic()
        time.sleep(self.pause_s)
        pid = target.root_pid
        before = tree_cpu_s(pid)
        while time.monotonic() - started < self.settle_max_s:
            time.sleep(0.5)
            now = tree_cpu_s(pid)
            if now - before < 0.5 * IDLE_CPU_FRACTION:
                break
            before = now
        waited = time.monotonic() - started
        if waited > self.pause_s + 1.5:
            self.log(f"  ({target.name} busy after the run: waited {waited:.1f}s for it to go idle)")
        return waited

    def _print(self, r: RunRecord) -> None:
        if r.error:
            self.log(f"  {r.scenario:<10} {r.target:<11} {r.offered_rps:>7.0f} req/s  ERROR {r.error}")
            return
        load = r.load
        gen_pct = 100 * load["generator_cpu_s"] / max(load["wall_s"], 1e-9)
        self.log(
            f"  {r.scenario:<10} {r.target:<11} {r.offered_rps:>7.0f} req/s -> {load['completed_rps']:>7.1f} ok/s "
            f"{load['success_pct']:5.1f}%  ttfb p50 {load['ttfb_ms']['p50']:7.1f}  total p50/p99 "
            f"{load['total_ms']['p50']:7.1f}/{load['total_ms']['p99']:7.1f} ms  rss {r.peak_rss_mb:6.1f} MB  "
            f"cpu/1k {r.cpu_s_per_1k:5.2f}s  gen {gen_pct:3.0f}%  errors {load['errors'] or '-'}"
        )

    def _rotated(self, shift: int) -> list[Target]:
        n = len(self.targets)
        return [self.targets[(i + shift) % n] for i in range(n)] if n else []

    def run_sweep(self, scenario: Scenario) -> None:
        collapsed: dict[str, float] = {}  # a target that failed most requests is not pushed harder
        for i, rate in enumerate(scenario.rates):
            for target in self._rotated(i):
                if target.name in collapsed:
                    skipped = RunRecord(scenario.key, target.name, rate)
                    skipped.error = f"skipped: collapsed at {collapsed[target.name]:.0f} req/s"
                    self.records.append(skipped)
                    self._print(skipped)
                    continue
                record = self.run_one(scenario, target, rate, scenario.duration_s, scenario.warmup_s)
                if record.error or record.load.get("success_pct", 0.0) < COLLAPSE_SUCCESS_PCT:
                    collapsed[target.name] = rate

    def run_max_rate(self, scenario: Scenario) -> None:
        direct = next((t for t in self.targets if t.name == DIRECT), None)
        ref = 0.0
        if direct is not None:  # unloaded reference for "added p99 <= 50 ms"
            calib = self.run_one(
                scenario, direct, 50.0, scenario.duration_s, scenario.warmup_s, label="maxrate-ref"
            )
            if calib.load:
                ref = float(calib.load["total_ms"]["p99"])
        self.reference_p99_ms = ref
        searches = {
            t.name: RateSearch(
                scenario.start_rate, scenario.rate_cap, scenario.max_probes, precision=scenario.rate_precision
            )
            for t in self.targets
        }
        round_no = 0
        while any(not s.done for s in searches.values()):
            for target in self._rotated(round_no):
                search = searches[target.name]
                if search.next_rate is None:
                    continue
                rate = search.next_rate
                record = self.run_one(scenario, target, rate, scenario.duration_s, scenario.warmup_s)
                record.extra["passed"] = passes_sustained(record, ref)
                search.record(rate, record.extra["passed"])
            round_no += 1
        self.max_rates = {name: s.result for name, s in searches.items()}
        self.lowest_fails = {name: s.lowest_fail for name, s in searches.items()}
        self.log(
            f"  max sustained rates: {self.max_rates} (reference p99 {ref:.1f} ms + {ADDED_P99_BUDGET_MS:.0f} ms)"
        )

    def run_memory(self, scenario: Scenario) -> None:
        rate = scenario.streams / scenario.ramp_s
        for target in self.targets:
            record = self.run_one(
                scenario, target, rate, scenario.ramp_s, 0.0, max_connections=scenario.streams + 64
            )
            concurrent = int(record.load.get("peak_in_flight", 0)) if record.load else 0
            record.extra["concurrent_streams"] = concurrent
            if concurrent:
                grown = max(0.0, record.peak_rss_mb - record.baseline_rss_mb)
                record.extra["kb_per_stream"] = grown * 1024 / concurrent

    def run(self, scenario: Scenario) -> None:
        self.log(f"scenario {scenario.title}")
        {"sweep": self.run_sweep, "max_rate": self.run_max_rate, "memory": self.run_memory}[scenario.kind](
            scenario
        )


def _children(pid: int) -> list[int]:
    import psutil

    try:
        return [c.pid for c in psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return []
