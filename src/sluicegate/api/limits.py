"""What one request may ask of the gateway before any of it reaches an upstream: how deep its
JSON nests, how many messages it holds, and which of its bodies are parsed off the event loop.

A body nested deeper than `MAX_JSON_DEPTH` parses, but could not be encoded again for an
upstream (orjson stops at 255 levels, and translations add a few): it is refused at parse time
with a 400 naming the field, never sent, and never counted against an upstream's health.
Parsing and validating a body of `OFF_LOOP_BYTES` or more runs on a worker thread, so a
request of several megabytes does not hold up the requests the event loop is serving.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final, TypeVar

from sluicegate.errors import InvalidRequestError

T = TypeVar("T")
Loc = tuple[int | str, ...]

MAX_JSON_DEPTH: Final = 100  # objects and arrays inside one another, the body itself the first
MAX_MESSAGES: Final = 10_000  # messages (or Responses input items) in one request
MAX_TOKENS_VALUE: Final = 2**31 - 1  # the largest token count a request may name (max_tokens...)
OFF_LOOP_BYTES: Final = 256 * 1024
_NAMED_LEVELS = 6  # how much of a too-deep field's path the error names


def too_deep(body: Any, limit: int = MAX_JSON_DEPTH) -> Loc | None:
    """The path of the first value nested deeper than `limit` (its first levels), or None."""
    stack: list[tuple[Any, int, Loc]] = [(body, 1, ())]
    while stack:
        node, depth, loc = stack.pop()
        if depth > limit:
            return loc
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in items:
            if isinstance(value, dict | list):
                stack.append((value, depth + 1, loc if len(loc) >= _NAMED_LEVELS else (*loc, key)))
    return None


def check_depth(raw: bytes, body: Any, param: Callable[[Loc], str], limit: int = MAX_JSON_DEPTH) -> None:
    """A 400 naming the field nested deeper than `limit`. `param` writes a path in the door's
    way (`messages.[0].content` for OpenAI's, `messages.0.content` for Anthropic's)."""
    if not isinstance(body, dict | list) or raw.count(b"[") + raw.count(b"{") <= limit:
        return  # too few brackets to nest that deep: nothing to walk
    loc = too_deep(body, limit)
    if loc is not None:
        name = param(loc) or "body"
        raise InvalidRequestError(
            f"'{name}' is nested too deeply: JSON values may nest at most {limit} levels.",
            param=name,
            code="nesting_too_deep",
        )


def check_count(items: Any, param: str, limit: int = MAX_MESSAGES) -> None:
    if isinstance(items, list) and len(items) > limit:
        raise InvalidRequestError(
            f"'{param}' holds {len(items)} items; the gateway accepts at most {limit}.",
            param=param,
            code="too_many_messages",
        )


_parser: ThreadPoolExecutor | None = None


async def parse_off_loop(raw: bytes, parse: Callable[[bytes], T]) -> T:
    """`parse(raw)`, on the parsing thread when the body is large. One thread for all of
    them: parsing holds the GIL, and the event loop then shares it with one thread, not many."""
    global _parser
    if len(raw) < OFF_LOOP_BYTES:
        return parse(raw)
    if _parser is None:  # made on first use: after a worker process has forked
        _parser = ThreadPoolExecutor(1, thread_name_prefix="sluicegate-parse")
    return await asyncio.get_running_loop().run_in_executor(_parser, parse, raw)
