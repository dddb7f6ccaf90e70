"""The usage page (`/usage`) in a real chromium, against a live gateway with known traffic.

The gateway runs on SQLite in front of the local OpenAI-format upstream, which echoes the last
user message and reports 5 prompt tokens and one completion token per word. Three keys send a
fixed set of requests to two priced models and a free one; one more request, ten days old, is
settled straight into the store (a gateway cannot backdate its own). Every figure the page must
show is computed here from those prices and word counts, not read back from the API.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import openai
import pytest

from sluicegate.store.records import NANOS_PER_USD, LedgerRecord
from sluicegate.store.sqlite import SQLiteStore
from tests.governance.support import GovGateway, start
from tests.support.openai_upstream import OpenAIUpstream

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

try:
    from playwright.sync_api import expect
except ImportError:  # conftest's browser fixture skips (or fails under CI) with a clear message
    expect = None  # type: ignore[assignment]

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


@pytest.fixture(scope="module")
def traffic(tmp_path_factory: pytest.TempPathFactory, upstream: OpenAIUpstream) -> Iterator[Traffic]:
    entry = {
        "provider": "openai",
        "base_url": upstream.base_url,
        "api_key": "x",
        "upstream_model": "gpt-4o-mini",
    }
    models = []
    for name, price in PRICES.items():
        model: dict[str, Any] = {"name": name, **entry}
        if price is not None:
            model["price"] = {"input": price[0], "output": price[1]}
        models.append(model)
    gov = start(Path(tmp_path_factory.mktemp("usage-page")), {"models": models})
    try:
        keys = {}
        for name, rules in KEY_RULES.items():
            with gov.admin() as admin:
                response = admin.post("/admin/keys", json={"name": name, **rules})
            assert response.status_code == 201, response.text
            keys[name] = (response.json()["id"], response.json()["secret"])
        # on a thread of its own: Playwright's sync API holds this thread's event loop
        with ThreadPoolExecutor(1) as thread:
            old_day = thread.submit(asyncio.run, settle_old(gov, keys["alice"][0])).result()
        for call in CALLS:
            send(gov, keys[call.key][1], call)
        with pytest.raises(openai.APIStatusError) as refused:
            send(gov, keys["carol"][1], REFUSED)
        assert refused.value.status_code == 402
        rows = wait_for_rows(gov, len(ALL))
        yield Traffic(gov, keys, rows[0]["day"], old_day)
    finally:
        gov.stop()


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


def test_the_page_shows_exact_usage_per_key_model_and_day(page: Page, traffic: Traffic) -> None:
    problems = watch(page)
    open_page(page, traffic)
    expect(page.locator("body")).to_have_attribute("data-state", "ready")

    total = expected(ALL, "all")["all"]
    assert total["cost"] == pytest.approx(17.511)  # the sum the page shows, checked by hand once
    per_key = expected(ALL, "key")
    names = {name: [name, key_id] for name, (key_id, _) in traffic.keys.items()}
    assert read_table(page.locator("#table-key")) == sum_table(per_key, names, total)
    assert money(per_key["alice"]["cost"], 2) == "$11.51"  # the keys' smallest spend is $2.50

    per_model = expected(ALL, "model")
    assert read_table(page.locator("#table-model")) == sum_table(
        per_model, {m: [m] for m in per_model}, total
    )
    assert money(per_model["cheap"]["cost"], 4) == "$0.0110"  # cheap's $0.011 sets 4 decimals

    page.get_by_text("Per-day figures as a table").click()
    days = {traffic.day: expected(RECENT, "all")["all"], traffic.old_day: expected([OLD], "all")["all"]}
    newest_first = sorted(days, reverse=True)
    assert read_table(page.locator("#table-day")) == sum_table(
        days, {d: [d] for d in days}, total, newest_first
    )
    expect(page.locator('[data-total="spend"] .value')).to_have_text("$17.51")
    expect(page.locator('[data-total="requests"] .value')).to_have_text("8")
    expect(page.locator('[data-total="total-tokens"] .value')).to_have_text(
        str(total["prompt"] + total["completion"])
    )

    # the charts: one bar group per day of the range, one row per key and model, each labelled
    expect(page.locator("#chart-day-spend svg > g.bars > g")).to_have_count(30)
    expect(page.locator("#chart-key svg > g")).to_have_count(3)
    expect(page.locator("#chart-model svg > g")).to_have_count(3)
    for chart in page.locator("figure.chart svg").all():
        assert chart.get_attribute("role") == "img"
        assert (chart.get_attribute("aria-label") or "").strip()
    assert "most spent by alice ($11.51)" in (
        page.locator("#chart-key svg").get_attribute("aria-label") or ""
    )
    titles = page.locator("#chart-day-spend svg g.bars > g > title").all_text_contents()
    assert titles[-1] == f"{traffic.day}: $13.01, 7 requests"
    assert titles[-11] == f"{traffic.old_day}: $4.50, 1 request"
    assert titles[-2] == f"{titles[-2][:10]}: $0.00, 0 requests"  # a day without traffic is drawn as zero

    page.screenshot(path="/tmp/usage-page.png", full_page=True)
    assert problems == []


def test_a_shorter_range_sums_only_its_days(page: Page, traffic: Traffic) -> None:
    problems = watch(page)
    open_page(page, traffic)
    expect(page.locator("body")).to_have_attribute("data-state", "ready")
    page.get_by_label("Days").select_option("7")
    expect(page.locator("body")).to_have_attribute("data-state", "ready")
    expect(page.locator('[data-total="requests"] .value')).to_have_text("7")
    names = {name: [name, key_id] for name, (key_id, _) in traffic.keys.items()}
    week = sum_table(expected(RECENT, "key"), names, expected(RECENT, "all")["all"])
    assert read_table(page.locator("#table-key")) == week
    expect(page.locator('[data-total="spend"] .value')).to_have_text("$13.01")
    expect(page.locator("#chart-day-spend svg > g.bars > g")).to_have_count(7)
    assert problems == []


def test_recent_requests_show_status_ttft_and_cost(page: Page, traffic: Traffic) -> None:
    open_page(page, traffic)
    expect(page.locator("body")).to_have_attribute("data-state", "ready")
    rows = row_texts(page.locator("#table-recent"))
    assert len(rows) == len(ALL)
    header = page.locator("#table-recent thead th").all_inner_texts()
    assert header == [
        "Time (UTC)",
        "Key",
        "Model",
        "Status",
        "Stream",
        "Prompt",
        "Completion",
        "TTFT",
        "Duration",
        "Cost",
    ]
    calls = [REFUSED, *reversed(CALLS), OLD]  # newest first
    for row, call in zip(rows, calls, strict=True):
        day = traffic.old_day if call is OLD else traffic.day
        assert re.fullmatch(rf"{day} \d\d:\d\d:\d\d", row[0])
        assert row[1:3] == [call.key, call.model]
        if call is REFUSED:
            assert row[3:] == ["402 insufficient_balance", "yes", "0", "0", "—", row[8], "$0.0000"]
            continue
        assert row[3:7] == ["200", "yes" if call.stream else "no", "5", str(call.completion)]
        assert re.fullmatch(r"[\d,]+ ms", row[7]) if call.stream else re.fullmatch(r"[\d,]+ ms|—", row[7])
        assert re.fullmatch(r"[\d,]+ ms", row[8])
        assert row[9] == money(call.cost, 4)  # cheap's $0.011 sets the table's decimals
    assert rows[-1][7:9] == ["120 ms", "300 ms"]  # OLD's, as settled
    titles = read_table(page.locator("#table-recent"))[2]
    assert titles == [usd(0 if call is REFUSED else call.cost) for call in calls]
    expect(page.locator("#older")).to_be_hidden()  # all of them fit on one page


def test_keys_table_shows_limits_and_remaining_budget(page: Page, traffic: Traffic) -> None:
    open_page(page, traffic)
    expect(page.locator("body")).to_have_attribute("data-state", "ready")
    rows = {r[0]: r for r in row_texts(page.locator("#table-keys"))}
    assert rows["admin admin key"][2] == "active"  # the admin key made at first start, tagged
    spent = {name: row["cost"] for name, row in expected(ALL, "key").items()}
    # Name, ID, Status, Budget, Spent, Reserved, Remaining, RPM, TPM, Models, Expires
    alice = rows["alice"]
    assert alice[1:] == [
        traffic.keys["alice"][0],
        "active",
        "$100.00",
        money(spent["alice"], 2),  # the smallest amount, carol's $1.50 left, sets 2 decimals
        "$0.00",
        money(100 - spent["alice"], 2),
        "60",
        "100,000",
        "priced, cheap",
        "never",
    ]
    assert rows["bob"][3:10] == ["—", money(spent["bob"], 2), "$0.00", "no budget", "—", "—", "all"]
    assert rows["carol"][3:7] == ["$5.00", "$3.50", "$0.00", "$1.50"]
    # exact amounts in the titles
    alice_row = page.locator("#table-keys tbody tr", has_text="alice")
    assert alice_row.locator("td").nth(3).get_attribute("title") == usd(spent["alice"]) == "$11.511"
    assert alice_row.locator("td").nth(5).get_attribute("title") == usd(100 - spent["alice"]) == "$88.489"
    meter = page.locator("#table-keys meter").first
    assert meter.get_attribute("aria-label") == "alice: $88.49 of $100.00 left"


def test_filters_narrow_every_part_to_one_key(page: Page, traffic: Traffic) -> None:
    problems = watch(page)
    open_page(page, traffic)
    expect(page.locator("body")).to_have_attribute("data-state", "ready")
    alice_id = traffic.keys["alice"][0]
    page.get_by_label("Key", exact=True).select_option(alice_id)
    expect(page.locator("body")).to_have_attribute("data-state", "ready")  # set to "loading" at once
    expect(page.locator("#table-recent tbody tr")).to_have_count(4)
    alices = [c for c in ALL if c.key == "alice"]
    per_model = expected(alices, "model")
    total = expected(alices, "all")["all"]
    assert read_table(page.locator("#table-model")) == sum_table(
        per_model, {m: [m] for m in per_model}, total
    )
    page.get_by_label("Model", exact=True).select_option("cheap")
    expect(page.locator("body")).to_have_attribute("data-state", "ready")
    expect(page.locator("#table-recent tbody tr")).to_have_count(1)
    cheap = per_model["cheap"]
    assert read_table(page.locator("#table-key")) == sum_table(
        {"alice": cheap}, {"alice": ["alice", alice_id]}, cheap
    )
    assert problems == []


def test_a_key_that_is_not_the_admin_key_is_refused(page: Page, traffic: Traffic) -> None:
    open_page(page, traffic, key=traffic.keys["alice"][1])
    error = page.get_by_role("alert")
    expect(error).to_contain_text("This key is not an admin key (403 admin_only)")
    expect(error).to_contain_text("the usage page needs the admin key")
    expect(page.locator("#dashboard")).to_be_hidden()
    expect(page.locator("body")).to_have_attribute("data-state", "error")
    page.screenshot(path="/tmp/usage-page-refused.png", full_page=True)

    page.get_by_label("Admin key").fill("")
    page.get_by_role("button", name="Connect").click()
    expect(error).to_have_text("Enter the admin key, then press Connect.")
    page.get_by_label("Admin key").fill("sk-sg-not-a-key-à")  # never sent: not a header value
    page.get_by_role("button", name="Connect").click()
    expect(error).to_contain_text("That is not an API key")

    page.get_by_label("Admin key").fill("sk-sg-not-a-key-at-all-000000")
    page.get_by_role("button", name="Connect").click()
    expect(error).to_contain_text("The gateway refused this key (401 invalid_api_key)")
    # the admin API itself refuses both, whatever the page does
    for secret, status in ((traffic.keys["alice"][1], 403), ("sk-sg-not-a-key-at-all-000000", 401)):
        response = httpx.get(
            traffic.gov.gateway.base_url + "/admin/usage", headers={"Authorization": f"Bearer {secret}"}
        )
        assert response.status_code == status
    # and the admin key then works in the same page
    page.get_by_label("Admin key").fill(traffic.gov.admin_key)
    page.get_by_role("button", name="Connect").click()
    expect(page.locator("body")).to_have_attribute("data-state", "ready")
    expect(error).to_be_hidden()


def test_opening_the_page_sends_nothing_and_links_to_the_playground(page: Page, traffic: Traffic) -> None:
    problems = watch(page)
    admin_calls: list[str] = []
    page.on("request", lambda r: admin_calls.append(r.url) if "/admin/" in r.url else None)
    base = traffic.gov.gateway.base_url
    page.goto(base + "/usage")
    page.wait_for_load_state("networkidle")
    assert admin_calls == []  # no key yet: nothing asked, nothing refused
    expect(page.get_by_role("status")).to_have_text("Enter the admin key, then press Connect.")
    page.get_by_role("link", name="Playground").click()
    expect(page).to_have_url(base + "/")
    page.get_by_role("link", name="Usage").click()
    expect(page).to_have_url(base + "/usage")
    stored = page.evaluate("() => [localStorage.length, sessionStorage.length, document.cookie]")
    assert stored == [0, 0, ""]
    assert problems == []


def test_dark_and_narrow_screens(browser: Any, traffic: Traffic) -> None:
    """Screenshots to look at: the dark colour scheme and a phone-sized screen."""
    for name, options in (
        ("dark", {"viewport": {"width": 1200, "height": 800}, "color_scheme": "dark"}),
        ("narrow", {"viewport": {"width": 420, "height": 900}}),
    ):
        context = browser.new_context(**options)
        try:
            page = context.new_page()
            problems = watch(page)
            open_page(page, traffic)
            expect(page.locator("body")).to_have_attribute("data-state", "ready")
            page.screenshot(path=f"/tmp/usage-page-{name}.png", full_page=True)
            # nothing wider than the screen but the tables' own scrolling boxes
            overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"{name}: the page is {overflow}px wider than the screen"
            assert problems == []
        finally:
            context.close()


def test_older_requests_page_back_through_the_ledger(
    page: Page, tmp_path: Path, upstream: OpenAIUpstream
) -> None:
    """55 requests: the newest 50 first, then the 5 before them, then no more."""
    entry = {"name": "free", "provider": "openai", "base_url": upstream.base_url, "api_key": "x"}
    gov = start(tmp_path / "paging", {"models": [entry]})
    try:
        _, secret = gov.new_key(name="pager")
        with httpx.Client(
            base_url=gov.v1, headers={"Authorization": f"Bearer {secret}"}, timeout=30
        ) as client:
            for n in range(55):
                body = {"model": "free", "messages": [{"role": "user", "content": f"word{n}"}]}
                assert client.post("/chat/completions", json=body).status_code == 200
        wait_for_rows(gov, 55)
        traffic = Traffic(gov, {}, "", "")
        problems = watch(page)
        open_page(page, traffic)
        expect(page.locator("body")).to_have_attribute("data-state", "ready")
        expect(page.locator("#table-recent tbody tr")).to_have_count(50)
        page.get_by_role("button", name="Older requests").click()
        expect(page.locator("#table-recent tbody tr")).to_have_count(55)
        expect(page.get_by_role("button", name="Older requests")).to_be_hidden()
        ids = [
            int(i or 0)
            for i in page.locator("#table-recent tbody tr").evaluate_all("rs => rs.map(r => r.dataset.id)")
        ]
        assert ids == sorted(ids, reverse=True)
        assert len(set(ids)) == 55
        assert problems == []
    finally:
        gov.stop()
