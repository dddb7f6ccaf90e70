"""The usage page (`/usage`) in a real chromium: who may use it (a key that is not the admin
key is refused, by the page and by the admin API), what it does before a key is given, and how
it looks on dark and narrow screens."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx

from tests.web.usage_support import Traffic, open_page, watch

if TYPE_CHECKING:
    from playwright.sync_api import Page

try:
    from playwright.sync_api import expect
except ImportError:  # conftest's browser fixture skips (or fails under CI) with a clear message
    expect = None  # type: ignore[assignment]


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
