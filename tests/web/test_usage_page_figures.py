"""The usage page (`/usage`) in a real chromium: the figures it shows (sums per key, model and
day, charts, recent requests, keys and budgets, filters, paging), against a live gateway with
known traffic (see `usage_support`)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.governance.support import start
from tests.support.openai_upstream import OpenAIUpstream
from tests.web.usage_support import (
    ALL,
    CALLS,
    OLD,
    RECENT,
    REFUSED,
    Traffic,
    expected,
    money,
    open_page,
    read_table,
    row_texts,
    sum_table,
    usd,
    wait_for_rows,
    watch,
)

if TYPE_CHECKING:
    from playwright.sync_api import Page

try:
    from playwright.sync_api import expect
except ImportError:  # conftest's browser fixture skips (or fails under CI) with a clear message
    expect = None  # type: ignore[assignment]


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
