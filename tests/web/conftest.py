"""Browser fixtures for the web playground tests (Playwright sync API on Debian's chromium).

Never runs ``playwright install``: the browser is the system ``chromium`` found on PATH.
Without it the tests skip locally, but fail under CI (``CI=true``) so a missing browser is never silent.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import openai
import pytest

from tests.governance.support import start
from tests.support.openai_upstream import OpenAIUpstream
from tests.web.usage_support import (
    ALL,
    CALLS,
    KEY_RULES,
    PRICES,
    REFUSED,
    Traffic,
    send,
    settle_old,
    wait_for_rows,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: browser tests must run in CI)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    executable = shutil.which("chromium")
    if executable is None:
        _unavailable("chromium not found on PATH: install it with `apt-get install chromium`")
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        _unavailable("playwright is not installed: `pip install playwright` (never `playwright install`)")
    # A first token from a local model on a busy 2-core machine can take longer than expect's default 5 s.
    expect.set_options(timeout=30_000)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh context and page per test; fails the test on any uncaught page error."""
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    context.set_default_timeout(30_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield page
    finally:
        context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


@pytest.fixture(scope="module")
def traffic(tmp_path_factory: pytest.TempPathFactory, upstream: OpenAIUpstream) -> Iterator[Traffic]:
    """A live gateway with the usage page's known traffic in its ledger, one per test module."""
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
    # No budget leases: a busy key would show its lease as reserved for a few seconds, and this
    # page's figures are checked to the cent (leases: tests/governance/test_leases.py).
    gov = start(Path(tmp_path_factory.mktemp("usage-page")), {"models": models, "governance": {"lease_s": 0}})
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
