"""``python -m bench.usage_page``: the usage page's API calls over a million ledger rows.

For each store (SQLite in a fresh data dir; PostgreSQL 127.0.0.1:5432 in a schema of its own,
dropped afterwards) it bulk-loads `--rows` ledger rows (SQLite: one transaction of
`executemany`; PostgreSQL: COPY), spread over `--days` days, `--keys` keys and `--models`
models with skewed popularity, 3% refusals, and one model retired after the first day (so a
filter on it has to look past every newer row). The daily aggregate and the keys' spend are
then filled from the ledger, as settlement would have kept them.

A real `sluicegate serve` process is started on that store with SLUICEGATE_ADMIN_KEY, and
every request the page sends is timed through HTTP (`--repeat` times after a warm-up, one at a
time): the calls made when the page opens (keys, the total, per day, per key, per model, the
newest requests) for the last 30 days and for all time, the same with a key or a model
filter, and the next page of requests. "page" is the wall time of all opening calls sent at
once, as the browser sends them. For comparison, the per-day sums are also computed straight
from the ledger (what the page would cost without the daily aggregate).

With `--browser` the page itself is opened in Debian's chromium (Playwright) and timed from
Connect to "loaded", and a screenshot is saved in /tmp. Results: ``bench/results/usage_page.md``
and ``usage_page.json``. This is a measurement, not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import secrets
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from bench.ledger_dataset import RETIRED, Dataset, drop_schema, load_postgres, load_sqlite
from bench.processes import Managed, free_port, spawn, stop, wait_http_ok
from sluicegate.store.records import utc_day

PG_BASE = "postgresql://postgres@127.0.0.1:5432/test"
REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = REPO_ROOT / "bench" / "results"
LEDGER_PER_DAY = (
    "SELECT day, COUNT(*), SUM(prompt_tokens), SUM(completion_tokens), SUM(cost_nanos)"
    " FROM ledger WHERE day >= {p} GROUP BY day ORDER BY day"
)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- measuring --------------------------------------------------------------------------------


def page_calls(since: str | None, key_id: str | None = None, model: str | None = None) -> list[str]:
    """The requests the usage page sends when it opens (usage.js `load`), for one range and filter."""
    common = "".join(
        f"&{name}={value}"
        for name, value in (("since", since), ("key_id", key_id), ("model", model))
        if value
    )
    recent = "".join(f"&{name}={value}" for name, value in (("key_id", key_id), ("model", model)) if value)
    return [
        "/admin/keys",
        f"/admin/usage?group_by={common}",
        f"/admin/usage?group_by=day{common}",
        f"/admin/usage?group_by=key{common}",
        f"/admin/usage?group_by=model{common}",
        f"/admin/requests?limit=50{recent}",
    ]


def timed(client: httpx.Client, path: str, repeat: int) -> dict[str, Any]:
    for _ in range(2):
        warm = client.get(path)
        if warm.status_code != 200:
            raise RuntimeError(f"GET {path}: {warm.status_code} {warm.text[:300]}")
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(path)
        times.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
    times.sort()
    return {
        "path": path,
        "p50_ms": statistics.median(times),
        "p95_ms": times[min(len(times) - 1, round(0.95 * (len(times) - 1)))],
        "max_ms": times[-1],
        "rows": len(response.json().get("data", [])),
        "bytes": len(response.content),
    }


async def _page_once(base_url: str, headers: dict[str, str], paths: list[str]) -> float:
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=120) as client:
        await client.get("/health")  # the connection pool warmed, as a page's would be
        started = time.perf_counter()
        responses = await asyncio.gather(*(client.get(path) for path in paths))
        elapsed = (time.perf_counter() - started) * 1000
    for response in responses:
        response.raise_for_status()
    return elapsed


def page_load(base_url: str, headers: dict[str, str], paths: list[str], repeat: int) -> dict[str, Any]:
    times = sorted(asyncio.run(_page_once(base_url, headers, paths)) for _ in range(repeat))
    return {
        "path": f"page: {len(paths)} calls at once",
        "p50_ms": statistics.median(times),
        "max_ms": times[-1],
    }


def ledger_reference(backend: str, data_dir: Path, schema: str, since: str, repeat: int) -> float:
    """Median ms of the per-day sums computed from the ledger itself (no aggregate table)."""
    times: list[float] = []
    if backend == "sqlite":
        conn = sqlite3.connect(data_dir / "sluicegate.db")
        for _ in range(repeat):
            started = time.perf_counter()
            conn.execute(LEDGER_PER_DAY.format(p="?"), (since,)).fetchall()
            times.append((time.perf_counter() - started) * 1000)
        conn.close()
        return statistics.median(times)

    async def run() -> None:
        import asyncpg

        conn = await asyncpg.connect(PG_BASE, server_settings={"search_path": schema})
        try:
            for _ in range(repeat):
                started = time.perf_counter()
                await conn.fetch(LEDGER_PER_DAY.format(p="$1"), since)
                times.append((time.perf_counter() - started) * 1000)
        finally:
            await conn.close()

    asyncio.run(run())
    return statistics.median(times)


def start_gateway(
    workdir: Path, data_dir: Path, database_url: str | None, admin_key: str
) -> tuple[Managed, str]:
    config: dict[str, Any] = {
        "models": [
            {
                "name": "model-0",
                "provider": "openai",
                "base_url": "http://127.0.0.1:9/v1",
                "api_key": "unused",
            }
        ]
    }
    if database_url:
        config["database"] = {"url": database_url}
    config_path = workdir / "usage-bench.yaml"
    config_path.write_text(yaml.safe_dump(config))
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "sluicegate.cli",
        "serve",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        "--config",
        str(config_path),
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICEGATE_")}
    env["SLUICEGATE_ADMIN_KEY"] = admin_key
    managed = spawn("sluicegate", cmd, workdir / "gateway.log", env=env)
    base_url = f"http://127.0.0.1:{port}"
    wait_http_ok(base_url + "/health", managed, timeout_s=120)
    return managed, base_url


def browser_load(base_url: str, admin_key: str, screenshot: str) -> float | None:
    """ms from Connect to every part of the page filled, in chromium; None without a browser."""
    executable = shutil.which("chromium")
    if executable is None:
        log("  (no chromium on PATH: page not timed in a browser)")
        return None
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=executable, args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1600})
            times = []
            for _ in range(3):
                page.goto(base_url + "/usage")
                page.fill("#admin-key", admin_key)
                started = time.perf_counter()
                page.click("#connect")
                page.wait_for_selector("body[data-state=ready]", timeout=120_000)
                times.append((time.perf_counter() - started) * 1000)
            page.screenshot(path=screenshot, full_page=True)
            return statistics.median(times)
        finally:
            browser.close()


def measure(backend: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    data = Dataset(args.rows, args.days, args.keys, args.models)
    data_dir = workdir / f"{backend}-data"
    schema = f"sg_bench_usage_{os.getpid()}_{secrets.token_hex(3)}"
    database_url = f"{PG_BASE}?schema={schema}" if backend == "postgres" else None
    log(f"[{backend}] loading {args.rows:,} ledger rows ...")
    try:
        if backend == "sqlite":
            load_s = load_sqlite(data_dir, data)
        else:
            load_s = asyncio.run(load_postgres(PG_BASE, schema, data))
        log(f"[{backend}] loaded in {load_s:.1f} s ({args.rows / load_s:,.0f} rows/s)")
        admin_key = "sk-sg-admin-bench-" + secrets.token_urlsafe(16)
        managed, base_url = start_gateway(workdir, data_dir, database_url, admin_key)
        headers = {"Authorization": f"Bearer {admin_key}"}
        try:
            since30 = utc_day(data.now - 29 * 86400)
            big_key, small_key = data.keys[0][0].id, data.keys[-1][0].id
            cases: list[tuple[str, list[str]]] = [
                ("last 30 days", page_calls(since30)),
                ("all time", page_calls(None)),
                (f"key filter (busiest key, {big_key})", page_calls(since30, key_id=big_key)),
                (f"key filter (quietest key, {small_key})", page_calls(since30, key_id=small_key)),
                ("model filter (model-0)", page_calls(since30, model="model-0")),
                (
                    f"model filter ({RETIRED}, last used {args.days} days ago)",
                    page_calls(None, model=RETIRED),
                ),
                (
                    f"key + model filter ({big_key}, {RETIRED})",
                    page_calls(None, key_id=big_key, model=RETIRED),
                ),
            ]
            results: dict[str, Any] = {"backend": backend, "load_s": load_s, "cases": []}
            with httpx.Client(base_url=base_url, headers=headers, timeout=120) as client:
                results["aggregate_rows"] = len(
                    client.get("/admin/usage?group_by=day,key,model").json()["data"]
                )
                middle = client.get("/admin/requests?limit=1").json()["data"][0]["id"] // 2
                for name, paths in cases:
                    log(f"[{backend}] {name}")
                    calls = [timed(client, path, args.repeat) for path in paths]
                    calls.append(page_load(base_url, headers, paths, args.repeat))
                    results["cases"].append({"name": name, "calls": calls})
                older = timed(client, f"/admin/requests?limit=50&before_id={middle}", args.repeat)
                results["cases"].append({"name": "older requests (a page from the middle)", "calls": [older]})
            results["ledger_per_day_ms"] = ledger_reference(
                backend, data_dir, schema, since30, max(3, args.repeat // 4)
            )
            if args.browser:
                shot = f"/tmp/usage-page-1m-{backend}.png"
                results["browser_ms"] = browser_load(base_url, admin_key, shot)
                results["screenshot"] = shot
        finally:
            stop(managed)
        return results
    finally:
        if backend == "postgres":
            asyncio.run(drop_schema(PG_BASE, schema))


# -- report -----------------------------------------------------------------------------------


def report(runs: list[dict[str, Any]], args: argparse.Namespace, commit: str) -> str:
    lines = [
        "# The usage page over a million ledger rows",
        "",
        f"`python -m bench.usage_page --rows {args.rows} --days {args.days} --keys {args.keys}"
        f" --models {args.models} --repeat {args.repeat}` at {commit}, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC,"
        f" {os.cpu_count()} cores (shared). Times through HTTP from a client on the same host; p50 / p95 of"
        f" {args.repeat} calls after a warm-up.",
        "",
    ]
    for run in runs:
        lines += [
            f"## {run['backend']}",
            "",
            f"Bulk load: {args.rows:,} rows in {run['load_s']:.1f} s ({args.rows / run['load_s']:,.0f} rows/s),"
            f" daily aggregate and spend included; {run['aggregate_rows']:,} aggregate rows (day x key x model).",
            f"Per-day sums of the last 30 days straight from the ledger (no aggregate), for comparison:"
            f" {run['ledger_per_day_ms']:.1f} ms.",
        ]
        if run.get("browser_ms") is not None:
            lines.append(
                f"The page in chromium, Connect to everything drawn (median of 3): {run['browser_ms']:.0f} ms"
                f" (screenshot {run['screenshot']})."
            )
        lines += ["", "| case | call | p50 ms | p95 ms | rows |", "|---|---|---:|---:|---:|"]
        for case in run["cases"]:
            for call in case["calls"]:
                p95 = f"{call['p95_ms']:.1f}" if "p95_ms" in call else ""
                rows = str(call.get("rows", ""))
                lines.append(f"| {case['name']} | `{call['path']}` | {call['p50_ms']:.1f} | {p95} | {rows} |")
        lines.append("")
    return "\n".join(lines)


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO_ROOT
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], capture_output=True, text=True, cwd=REPO_ROOT
        )
        return out.stdout.strip() + (" (dirty tree)" if dirty.stdout.strip() else "")
    except OSError:
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.usage_page", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--keys", type=int, default=50)
    parser.add_argument("--models", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--browser", action="store_true", help="also time the page in chromium (Playwright)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="sg-usage-bench-") as tmp:
        for backend in backends:
            runs.append(measure(backend, args, Path(tmp)))
    text = report(runs, args, git_commit())
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "usage_page.md").write_text(text + "\n")
    (args.out / "usage_page.json").write_text(
        json.dumps({"args": vars(args) | {"out": str(args.out)}, "runs": runs}, indent=1)
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
