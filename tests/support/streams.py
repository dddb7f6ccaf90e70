"""A streaming request in a background thread, its bytes kept as they arrive, with events a
test can wait on (first content, first keep-alive, the end) instead of sleeping; and a local
request the embedded model cannot answer quickly."""

from __future__ import annotations

import re
import threading
from typing import Any

import httpx

from tests.support.server import Gateway

CONTENT = re.compile(rb'"content":"[^"]')
# A JSON string of at least 3,000 characters: the grammar forbids the model to end sooner, so
# such a stream is surely still generating while a test acts.
LONG_JSON = {
    "type": "json_schema",
    "json_schema": {
        "name": "story",
        "schema": {
            "type": "object",
            "properties": {"story": {"type": "string", "minLength": 3000}},
            "required": ["story"],
        },
    },
}


class StreamClient(threading.Thread):
    """One streaming request in the background, its raw bytes kept as they arrive."""

    def __init__(self, gateway: Gateway, body: dict[str, Any]) -> None:
        super().__init__(daemon=True)
        self.gateway = gateway
        self.body = {"stream": True, **body}
        self.raw = b""
        self.status: int | None = None
        self.failure: BaseException | None = None
        self.content = threading.Event()
        self.keepalive = threading.Event()
        self.done = threading.Event()
        self.start()

    def run(self) -> None:
        try:
            with httpx.stream(
                "POST",
                self.gateway.v1 + "/chat/completions",
                json=self.body,
                headers={"Authorization": f"Bearer {self.gateway.api_key}"},
                timeout=180,
            ) as response:
                self.status = response.status_code
                for part in response.iter_raw():
                    self.raw += part
                    if CONTENT.search(self.raw):
                        self.content.set()
                    if b": keep-alive\n\n" in self.raw:
                        self.keepalive.set()
        except BaseException as exc:
            self.failure = exc
        finally:
            self.done.set()

    def events(self) -> list[bytes]:
        assert self.done.wait(120), "the stream never ended"
        assert self.failure is None, self.failure
        assert self.status == 200
        assert self.raw.endswith(b"\n\n"), self.raw[-200:]
        return [block for block in self.raw[:-2].split(b"\n\n") if block != b": keep-alive"]
