"""A whole Gemini `generateContent` answer -> the canonical Completion.

A whole answer has the shape of one streamed event, so it goes through the same parser and is
folded like a stream: both paths map text, thoughts, calls, finish reasons and usage the same
way by construction.
"""

from __future__ import annotations

from typing import Any

from sluicegate.core.completion import Completion, fold_events
from sluicegate.providers.gemini.stream import StreamParser


def parse_response(body: Any, name: str, wildcard: bool = False) -> Completion:
    parser = StreamParser(name, wildcard)
    events = parser.parse(body)
    events += parser.close()
    return fold_events(events)
