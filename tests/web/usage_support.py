"""What the usage page's tests share: the traffic they send, the figures it must add up to,
and how they read the page.

The gateway runs on SQLite in front of the local OpenAI-format upstream, which echoes the last
user message and reports 5 prompt tokens and one completion token per word. Three keys send a
fixed set of requests to two priced models and a free one; one more request, ten days old, is
settled straight into the store (a gateway cannot backdate its own). Every figure the page must
show is computed here from those prices and word counts, not read back from the API.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import openai

from sluicegate.store.records import NANOS_PER_USD, LedgerRecord
from sluicegate.store.sqlite import SQLiteStore
from tests.governance.support import GovGateway

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page


# USD per million tokens: PRICED makes a prompt token $0.10 and a completion token $1.
PRICES = {"priced": (100_000.0, 1_000_000.0), "cheap": (1_000.0, 3_000.0), "free": None}
PROMPT_TOKENS = 5  # what the local upstream reports for every request


@dataclass(frozen=True)
class Call:
    key: str
    model: str
    text: str
    stream: bool
    max_tokens: int = 10  # what a budget reservation counts on: $10 at most on PRICED
    days_ago: int = 0

    @property
    def completion(self) -> int:
        return len(self.text.split(" "))

    @property
    def cost(self) -> float:
        price = PRICES[self.model]
        if price is None:
            return 0.0
        return (PROMPT_TOKENS * price[0] + self.completion * price[1]) / 1_000_000


# In this order; the last one is refused (carol's budget is spent), so it costs nothing.
CALLS = [
    Call("alice", "priced", "one two three", stream=True),
    Call("alice", "priced", "four five six", stream=True),
    Call("alice", "cheap", "a b", stream=False),
    Call("bob", "priced", "hello world", stream=True),
    Call("bob", "free", "x", stream=False),
    Call("carol", "priced", "seven eight nine", stream=True, max_tokens=3),
]
REFUSED = Call("carol", "priced", "ten eleven twelve", stream=True, max_tokens=3)
OLD = Call("alice", "priced", "old words here now", stream=False, days_ago=10)  # settled before the others
KEY_RULES = {
    "alice": {"budget_usd": 100, "rpm": 60, "tpm": 100_000, "models": ["priced", "cheap"]},
    "bob": {},
    "carol": {"budget_usd": 5},
}


ALL = [OLD, *CALLS, REFUSED]
RECENT = [c for c in ALL if c.days_ago < 7]  # what "Last 7 days" keeps


def expected(calls: list[Call], group: str) -> dict[str, dict[str, Any]]:
    """Sums per key or model (or one "all" row) as the page must show them."""
    out: dict[str, dict[str, Any]] = {}
    for call in calls:
        name = {"key": call.key, "model": call.model, "all": "all"}[group]
        row = out.setdefault(name, {"requests": 0, "errors": 0, "prompt": 0, "completion": 0, "cost": 0.0})
        row["requests"] += 1
        if call is REFUSED:
            row["errors"] += 1
            continue
        row["prompt"] += PROMPT_TOKENS
        row["completion"] += call.completion
        row["cost"] += call.cost
    return out


def usd(value: float) -> str:
    """An exact amount as the page gives it in a cell's title: at least cents, to the nano-dollar."""
    text = f"{round(value, 9):,.9f}".rstrip("0")
    whole, _, cents = text.partition(".")
    return f"${whole}.{cents.ljust(2, '0')}"


def decimals(amounts: list[float]) -> int:
    """The page's rule: a table's amounts all get the decimals that show three significant digits
    of its smallest non-zero amount, at least 2 and at most 9."""
    nonzero = [abs(a) for a in amounts if a]
    return max(2, min(9, math.ceil(-math.log10(min(nonzero))) + 2)) if nonzero else 2


def money(value: float, places: int) -> str:
    return f"${value:,.{places}f}"


@dataclass
class Traffic:
    gov: GovGateway
    keys: dict[str, tuple[str, str]]  # name -> (id, secret)
    day: str  # today (UTC), the day of every request but OLD
    old_day: str


async def settle_old(gov: GovGateway, key_id: str) -> str:
    """OLD, as the gateway would have settled it ten days ago: ledger row, daily sums, spend."""
    created = time.time() - OLD.days_ago * 86400
    record = LedgerRecord(
        request_id="req_old",
        created_at=created,
        key_id=key_id,
        door="openai",
        model=OLD.model,
        provider="openai",
        served_by=OLD.model,
        upstream_model="gpt-4o-mini",
        status=200,
        finish_reason="stop",
        prompt_tokens=PROMPT_TOKENS,
        completion_tokens=OLD.completion,
        usage_source="upstream",
        cost_nanos=round(OLD.cost * NANOS_PER_USD),
        ttft_ms=120.0,
        total_ms=300.0,
    )
    store = SQLiteStore.in_data_dir(gov.gateway.data_dir)
    await store.open()
    try:
        await store.settle([record])
    finally:
        await store.close()
    return record.day


def send(gov: GovGateway, secret: str, call: Call) -> None:
    client = openai.OpenAI(api_key=secret, base_url=gov.v1, max_retries=0, timeout=30)
    extra: dict[str, Any] = {"max_tokens": call.max_tokens}
    messages: Any = [{"role": "user", "content": call.text}]
    if call.stream:
        chunks = client.chat.completions.create(
            model=call.model, messages=messages, stream=True, stream_options={"include_usage": True}, **extra
        )
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    else:
        text = (
            client.chat.completions.create(model=call.model, messages=messages, **extra)
            .choices[0]
            .message.content
            or ""
        )
    assert text == call.text


def wait_for_rows(gov: GovGateway, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 15
    with gov.admin() as admin:
        while True:
            rows: list[dict[str, Any]] = admin.get("/admin/requests", params={"limit": 100}).json()["data"]
            if len(rows) >= count:
                return rows
            assert time.monotonic() < deadline, f"only {len(rows)} ledger rows after 15 s"
            time.sleep(0.1)


# -- the page ---------------------------------------------------------------------------------


def open_page(page: Page, traffic: Traffic, key: str | None = None) -> None:
    page.goto(traffic.gov.gateway.base_url + "/usage")
    page.get_by_label("Admin key").fill(key if key is not None else traffic.gov.admin_key)
    page.get_by_role("button", name="Connect").click()


def row_texts(table: Locator) -> list[list[str]]:
    return [
        [cell.strip() for cell in row.locator("th, td").all_inner_texts()]
        for row in table.locator("tbody tr").all()
    ]


def sums(row: dict[str, Any], places: int) -> list[str]:
    total = row["prompt"] + row["completion"]
    return [
        str(row["requests"]),
        str(row["errors"]),
        f"{row['prompt']:,}",
        f"{row['completion']:,}",
        f"{total:,}",
        money(row["cost"], places),
    ]


def sum_table(
    groups: dict[str, dict[str, Any]],
    first: dict[str, list[str]],
    total: dict[str, Any],
    order: list[str] | None = None,
) -> tuple[list[list[str]], list[str], list[str]]:
    """A per-key/model/day table as the page must show it (keys and models: biggest spender
    first): its rows, its total row, and the exact costs of its rows (the Cost cells' titles)."""
    places = decimals([row["cost"] for row in groups.values()] + [total["cost"]])
    order = order or sorted(groups, key=lambda name: -groups[name]["cost"])
    rows = [[*first[name], *sums(groups[name], places)] for name in order]
    foot = ["Total", *([""] * (len(first[order[0]]) - 1)), *sums(total, places)]
    return rows, foot, [usd(groups[name]["cost"]) for name in order]


def read_table(table: Locator) -> tuple[list[list[str]], list[str], list[str]]:
    """What a table shows: its rows, its total row and the titles of its last column."""
    foot = [c.strip() for c in table.locator("tfoot tr").first.locator("th, td").all_inner_texts()]
    titles = [cell.get_attribute("title") or "" for cell in table.locator("tbody tr td:last-child").all()]
    return row_texts(table), foot, titles


def watch(page: Page) -> list[str]:
    """Console errors, page errors and failed requests, as they happen."""
    problems: list[str] = []
    page.on("console", lambda msg: problems.append(f"console: {msg.text}") if msg.type == "error" else None)
    page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.on("requestfailed", lambda r: problems.append(f"failed: {r.url}"))
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    return problems
