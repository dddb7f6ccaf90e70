"""The seed guide's browser streaming example, run verbatim from a page on another origin.

Only the URL, the key and the model id are substituted into the verbatim text below. Running it from a page
served by a second local HTTP server exercises the gateway's CORS handling (preflight ``OPTIONS`` for a
cross-origin ``POST`` carrying ``Authorization`` and a JSON ``Content-Type``).
"""

from __future__ import annotations

import http.server
import threading
import urllib.request
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Page

SEED_EXAMPLE = """\
async function streamChat(message) {
  const response = await fetch('https://api.lemondata.cc/v1/chat/completions', {
    method: 'POST',
    headers: {
      'Authorization': 'Bearer sk-your-api-key',
      'Content-Type': 'application/json'
    },
    body: JSON.stringify({
      model: 'gpt-4o',
      messages: [{ role: 'user', content: message }],
      stream: true
    })
  });

  const reader = response.body.getReader();
  const decoder = new TextDecoder();

  while (true) {
    const { done, value } = await reader.read();
    if (done) break;

    const chunk = decoder.decode(value);
    const lines = chunk.split('\\n').filter(line => line.startsWith('data: '));

    for (const line of lines) {
      const data = line.slice(6);
      if (data === '[DONE]') return;

      const parsed = JSON.parse(data);
      const content = parsed.choices[0]?.delta?.content;
      if (content) {
        // Thêm vào giao diện người dùng của bạn
        document.getElementById('output').textContent += content;
      }
    }
  }
}
"""

PAGE = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>another origin</title></head>
<body><div id="output"></div></body></html>
"""

# Bounds the run. The seed sets no max_tokens, so the answer ends at the model's end of sequence or when
# the context is full: the small local model can loop until then (~2000 tokens, about a minute here).
RUN_WITH_DEADLINE = """async (seconds) => {
  const deadline = new Promise((_, reject) =>
    setTimeout(() => reject(new Error(`streamChat took over ${seconds}s`)), seconds * 1000));
  await Promise.race([streamChat("Write a short poem"), deadline]);
}"""


def seed_for(gateway: Any) -> str:
    replacements = {
        "https://api.lemondata.cc/v1/chat/completions": f"{gateway.base_url}/v1/chat/completions",
        "sk-your-api-key": gateway.api_key,
    }
    code = SEED_EXAMPLE
    for old, new in replacements.items():
        assert code.count(old) == 1, old
        code = code.replace(old, new)
    return code


class _PageHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def other_origin() -> Iterator[str]:
    """A tiny page on a second local HTTP server (another port, so another origin)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _PageHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_preflight_allows_the_seed_request(gateway: Any, other_origin: str) -> None:
    req = urllib.request.Request(gateway.base_url + "/v1/chat/completions", method="OPTIONS")
    req.add_header("Origin", other_origin)
    req.add_header("Access-Control-Request-Method", "POST")
    req.add_header("Access-Control-Request-Headers", "authorization,content-type")
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert 200 <= resp.status < 300
        allow_origin = resp.headers.get("Access-Control-Allow-Origin")
        allow_headers = (resp.headers.get("Access-Control-Allow-Headers") or "").lower()
    assert allow_origin in ("*", other_origin)
    # A bare `*` does not cover Authorization in browsers: it has to be named (or echoed).
    assert "authorization" in allow_headers
    assert "content-type" in allow_headers or allow_headers.strip() == "*"


def test_seed_browser_example_streams_from_another_origin(
    page: Page, gateway: Any, other_origin: str
) -> None:
    assert not gateway.base_url.startswith(other_origin)
    page.goto(other_origin + "/")
    page.add_script_tag(content=seed_for(gateway))
    page.evaluate(RUN_WITH_DEADLINE, 180)
    output = page.locator("#output").text_content() or ""
    assert output.strip(), "the seed example wrote nothing into #output"
