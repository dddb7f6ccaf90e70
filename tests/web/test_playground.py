"""End-to-end tests of the chat playground served at ``/``, in a real (headless) chromium.

Runs against the live ``gateway`` fixture (tests/conftest.py): a sluicegate server with a small local model.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from playwright.sync_api import Page, Request

try:
    from playwright.sync_api import expect
except ImportError:  # conftest's browser fixture skips (or fails under CI) with a clear message
    expect = None  # type: ignore[assignment]

SCREENSHOT = "/tmp/playground.png"
FINISHED = re.compile(r"finish: (length|stop)")
WRONG_KEY = "sk-wrong-key-for-playground-test-0000"


def direct(
    gateway: Any, method: str, path: str, key: str, body: dict[str, Any] | None = None
) -> tuple[int, Any]:
    """A request straight to the gateway (not through the page): (status, parsed JSON body)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(gateway.base_url + path, data=data, method=method)
    req.add_header("Authorization", f"Bearer {key}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def connect(page: Page, gateway: Any, key: str | None = None) -> None:
    page.goto(gateway.base_url + "/")
    page.fill("#api-key", key if key is not None else gateway.api_key)
    page.click("#connect")


def connect_and_pick_model(page: Page, gateway: Any) -> None:
    connect(page, gateway)
    expect(page.locator(f'#model option[value="{gateway.model}"]')).to_be_attached()
    page.select_option("#model", gateway.model)
    expect(page.locator("#model")).to_have_value(gateway.model)


def is_chat_request(request: Request) -> bool:
    return request.method == "POST" and request.url.endswith("/v1/chat/completions")


def wait_until_answered(page: Page, timeout: float = 60_000) -> None:
    expect(page.locator("#send")).to_be_enabled(timeout=timeout)
    expect(page.locator("#stats")).to_contain_text(FINISHED)


WATCH_STREAMING = """() => {
  window.__seen = [];
  new MutationObserver(() => {
    const all = document.querySelectorAll('#messages .msg.assistant .content');
    if (all.length) window.__seen.push(all[all.length - 1].textContent);
  }).observe(document.getElementById('messages'), {subtree: true, childList: true, characterData: true});
}"""


def test_chat_streams_keeps_history_and_shows_stats(page: Page, gateway: Any) -> None:
    connect_and_pick_model(page, gateway)
    expect(page.locator("#status")).not_to_have_class(re.compile(r"\berror\b"))
    # The key is kept in page memory only.
    stored = page.evaluate("() => [localStorage.length, sessionStorage.length, document.cookie]")
    assert stored == [0, 0, ""]
    assert gateway.api_key not in page.url

    page.fill("#system", "You are a friendly assistant.")
    page.fill("#temperature", "0")
    page.fill("#max-tokens", "16")
    page.fill("#prompt", "Say hello")
    page.evaluate(WATCH_STREAMING)
    with page.expect_request(is_chat_request) as first:
        page.press("#prompt", "Enter")
    body = first.value.post_data_json
    assert body["model"] == gateway.model
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["max_tokens"] == 16
    assert body["temperature"] == 0
    assert body["messages"] == [
        {"role": "system", "content": "You are a friendly assistant."},
        {"role": "user", "content": "Say hello"},
    ]

    wait_until_answered(page)
    user = page.locator("#messages .msg.user")
    answer = page.locator("#messages .msg.assistant .content")
    expect(user).to_have_count(1)
    expect(user.first.locator(".content")).to_have_text("Say hello")
    expect(answer).to_have_count(1)
    first_answer = answer.first.text_content() or ""
    assert first_answer.strip(), "the assistant answer is empty"

    stats = page.locator("#stats")
    for part in ("ttft", "tok/s", "usage"):
        expect(stats).to_contain_text(part)
    match = re.search(r"(\d+) prompt \+ (\d+) completion", stats.text_content() or "")
    assert match, f"no usage numbers in #stats: {stats.text_content()!r}"
    completion_tokens = int(match.group(2))
    assert int(match.group(1)) > 0
    assert 0 < completion_tokens <= 16
    if completion_tokens >= 3:  # a multi-token answer must have been visible part-way through
        seen = [text for text in page.evaluate("() => window.__seen") if text]
        assert len(set(seen)) >= 2, f"the answer did not stream in (updates seen: {seen!r})"
        assert seen[0] != first_answer, "the first visible text was already the whole answer"

    # Second turn: the whole conversation is sent; markup typed by the user stays text (no XSS).
    second_prompt = "Now say <b>bye</b> <img src=x onerror=window.__xss=1>"
    page.fill("#max-tokens", "8")
    page.fill("#prompt", second_prompt)
    with page.expect_request(is_chat_request) as second:
        page.click("#send")
    messages = second.value.post_data_json["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[2]["content"] == first_answer
    assert messages[3]["content"] == second_prompt

    wait_until_answered(page)
    expect(user).to_have_count(2)
    expect(user.nth(1).locator(".content")).to_have_text(second_prompt)
    expect(page.locator("#messages b, #messages img")).to_have_count(0)
    assert page.evaluate("() => window.__xss") is None
    expect(page.locator("#prompt")).to_have_value("")

    page.screenshot(path=SCREENSHOT, full_page=True)


def test_stop_aborts_a_long_answer_and_page_stays_usable(page: Page, gateway: Any) -> None:
    connect_and_pick_model(page, gateway)
    # Shift+Enter is a newline, not a send.
    page.fill("#prompt", "one")
    page.press("#prompt", "Shift+Enter")
    page.type("#prompt", "two")
    expect(page.locator("#prompt")).to_have_value("one\ntwo")
    expect(page.locator("#messages .msg")).to_have_count(0)

    page.fill("#max-tokens", "400")
    page.fill("#prompt", "Write a very long story about a lighthouse keeper and the sea.")
    expect(page.locator("#stop")).to_be_disabled()
    page.click("#send")
    answer = page.locator("#messages .msg.assistant .content").last
    expect(answer).to_have_text(re.compile(r"\S"))
    expect(page.locator("#stop")).to_be_enabled()
    page.click("#stop")

    expect(page.locator("#send")).to_be_enabled(timeout=5_000)
    expect(page.locator("#stop")).to_be_disabled()
    expect(page.locator("#status")).to_contain_text("Stopped")
    expect(page.locator("#stats")).to_contain_text("finish: aborted")
    partial = answer.text_content()
    page.wait_for_timeout(700)
    assert answer.text_content() == partial, "text kept arriving after Stop"
    assert partial and partial.strip(), "the partial answer should stay in the conversation"

    # Still usable: a short follow-up gets a complete answer.
    page.fill("#max-tokens", "8")
    page.fill("#prompt", "Say hi")
    page.press("#prompt", "Enter")
    wait_until_answered(page)
    expect(page.locator("#messages .msg.assistant")).to_have_count(2)
    expect(page.locator("#messages .msg.assistant .content").last).to_have_text(re.compile(r"\S"))


def test_wrong_key_shows_the_servers_error_message(page: Page, gateway: Any) -> None:
    status, body = direct(gateway, "GET", "/v1/models", WRONG_KEY)
    assert status == 401, (status, body)
    message = body["error"]["message"]
    assert message

    connect(page, gateway, key=WRONG_KEY)
    expect(page.locator("#status")).to_contain_text(message)
    expect(page.locator("#status")).to_have_class(re.compile(r"\berror\b"))
    expect(page.locator(f'#model option[value="{gateway.model}"]')).to_have_count(0)

    # Correcting the key recovers without a reload.
    page.fill("#api-key", gateway.api_key)
    page.click("#connect")
    expect(page.locator(f'#model option[value="{gateway.model}"]')).to_be_attached()
    expect(page.locator("#status")).not_to_have_class(re.compile(r"\berror\b"))


def test_chat_error_response_shows_message_and_keeps_prompt(page: Page, gateway: Any) -> None:
    missing = "no-such-model-for-playground-test"
    request = {"model": missing, "messages": [{"role": "user", "content": "hi"}], "stream": True}
    status, body = direct(gateway, "POST", "/v1/chat/completions", gateway.api_key, request)
    assert status >= 400, (status, body)
    message = body["error"]["message"]
    assert message

    connect_and_pick_model(page, gateway)
    page.evaluate(
        "(id) => { const s = document.getElementById('model'); s.add(new Option(id, id)); s.value = id; }",
        missing,
    )
    page.fill("#prompt", "hi")
    page.click("#send")
    expect(page.locator("#status")).to_contain_text(message)
    expect(page.locator("#status")).to_have_class(re.compile(r"\berror\b"))
    expect(page.locator("#send")).to_be_enabled()
    # The failed turn is rolled back and its text handed back for a retry.
    expect(page.locator("#messages .msg")).to_have_count(0)
    expect(page.locator("#prompt")).to_have_value("hi")


def test_no_console_errors_or_failed_requests_on_load(page: Page, gateway: Any) -> None:
    problems: list[str] = []
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.goto(gateway.base_url + "/")
    page.wait_for_load_state("networkidle")
    assert problems == []
    # the icon is served, not a 404
    assert direct_status(gateway, "/static/favicon.svg") == 200


def direct_status(gateway: Any, path: str) -> int:
    with urllib.request.urlopen(gateway.base_url + path, timeout=10) as resp:
        return int(resp.status)


def test_aliases_are_marked_and_the_answer_names_its_model(page: Page, gateway: Any) -> None:
    connect(page, gateway)
    alias = page.locator('#model option[value="gpt-4o"]')
    expect(alias).to_have_text(f"gpt-4o (alias of {gateway.model})")
    expect(page.locator(f'#model option[value="{gateway.model}"]')).to_have_text(gateway.model)
    page.select_option("#model", "gpt-4o")
    page.fill("#max-tokens", "8")
    page.fill("#prompt", "Hello")
    page.click("#send")
    wait_until_answered(page)
    answer = page.locator("#messages .msg.assistant").last
    # the model that wrote it, not the alias that was asked for
    expect(answer.locator(".role")).to_have_text(f"assistant · {gateway.model}")
    expect(page.locator("#stats")).to_contain_text(f"model: {gateway.model}")
    page.screenshot(path="/tmp/playground-alias.png", full_page=True)
