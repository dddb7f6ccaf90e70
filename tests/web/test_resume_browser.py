"""A resumable chat stream in a real (headless) chromium: the page reads two events, drops the
connection (AbortController), and reconnects as an EventSource does, sending `Last-Event-ID`
with the last `id:` it saw; what it then reads is, byte for byte, the rest of the stream.

(The browser's own `EventSource` cannot send an API key header, so the page reconnects with
`fetch`, the way EventSource polyfills and SDKs do, with the same header.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tests.support.openai_calls import usage_chunk
from tests.support.openai_upstream import OpenAIUpstream, Reply, chunk

if TYPE_CHECKING:
    from playwright.sync_api import Page

WORDS = [f"w{i} " for i in range(30)]

SCRIPT = """
async ({key, model}) => {
  const auth = {authorization: "Bearer " + key};
  const controller = new AbortController();
  const body = {model, stream: true, store: true, messages: [{role: "user", content: "count"}]};
  const response = await fetch("/v1/chat/completions", {
    method: "POST", signal: controller.signal,
    headers: {...auth, "content-type": "application/json"}, body: JSON.stringify(body),
  });
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let text = "";
  while ((text.match(/\\n\\n/g) || []).length < 2) {
    const {value, done} = await reader.read();
    if (done) break;
    text += decoder.decode(value, {stream: true});
  }
  controller.abort();
  const events = text.split("\\n\\n").slice(0, 2).map((event) => event + "\\n\\n");
  const lastEventId = /^id: (\\d+)$/m.exec(events[1])[1];
  const id = JSON.parse(/^data: (.*)$/m.exec(events[0])[1]).id;
  const url = `/v1/chat/completions/${id}/stream`;
  const rest = await (await fetch(url, {headers: {...auth, "last-event-id": lastEventId}})).text();
  const whole = await (await fetch(url + "?after=-1", {headers: auth})).text();
  return {first: events.join(""), lastEventId, rest, whole};
}
"""


def test_a_browser_reconnects_with_last_event_id_and_gets_the_rest(
    page: Page, gateway: Any, clean_upstream: OpenAIUpstream
) -> None:
    chunks = [chunk(role="assistant", content="")] + [chunk(word) for word in WORDS]
    chunks += [chunk(finish="stop"), usage_chunk(4, len(WORDS)), b"data: [DONE]\n\n"]
    clean_upstream.enqueue(Reply(chunks=chunks, delay_s=0.02))
    page.goto(gateway.base_url + "/")
    result = page.evaluate(SCRIPT, {"key": gateway.api_key, "model": "upstream-gpt"})
    assert result["lastEventId"] == "1"
    assert result["rest"].startswith("id: 2\n") and result["rest"].endswith("data: [DONE]\n\n")
    assert result["first"] + result["rest"] == result["whole"]
    assert "".join(WORDS) in "".join(
        part.split('"content":"', 1)[1].split('"', 1)[0] for part in result["whole"].split("\n") if '"content":"' in part
    )
