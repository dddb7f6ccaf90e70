"""A whole Anthropic message -> the canonical Completion.

The same mappings as the stream (stop reasons, usage, which blocks a client can act on):
the content blocks are replayed through the stream parser's block handling, so both paths
give one answer.
"""

from __future__ import annotations

from typing import Any

from sluicegate.core.completion import Completion, fold_events
from sluicegate.core.events import Event
from sluicegate.errors import UpstreamError
from sluicegate.providers.anthropic.stream import MessageStreamParser


def parse_message(body: Any, name: str, explain_refusals: bool = True) -> Completion:
    if not isinstance(body, dict) or not isinstance(body.get("content"), list):
        raise UpstreamError(f"The upstream of `{name}` answered without a `content` list.")
    if not all(isinstance(block, dict) for block in body["content"]):
        raise UpstreamError(f"The upstream of `{name}` answered with a malformed content block.")
    parser = MessageStreamParser(name, explain_refusals)
    events: list[Event] = []
    # A whole message reads as a stream whose message_start holds everything.
    parser.parse({"type": "message_start", "message": body}, events)
    parser.parse({"type": "message_stop"}, events)
    return fold_events(events)
