"""Native pass-through is decided per attempt: the client's body goes only to a provider that
declares its wire format, so a fallback of another kind gets the translated request."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from sluicegate.core.completion import Completion
from sluicegate.core.events import Batch, Started, TextDelta
from sluicegate.core.request import ChatRequest, NativeBody, WireFormat
from sluicegate.errors import ServiceUnavailableError
from sluicegate.model_config.policies import CooldownPolicy
from sluicegate.routing.attempt import Deployment
from sluicegate.routing.router import Router


class Recording:
    """A provider that notes the native body of each request it gets, and fails if told to."""

    kind = "recording"
    owned_by = "tests"

    def __init__(self, name: str, formats: frozenset[WireFormat], fail: bool = False) -> None:
        self.name = name
        self.native_formats = formats
        self.fail = fail
        self.seen: list[NativeBody | None] = []

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def stream(self, request: ChatRequest) -> AsyncGenerator[Batch, None]:
        self.seen.append(request.native_body)
        if self.fail:
            raise ServiceUnavailableError("down")
        yield [Started(upstream_model=self.name), TextDelta("hi")]

    async def complete(self, request: ChatRequest) -> Completion:
        raise AssertionError("not used")

    async def count_tokens(self, request: ChatRequest) -> int | None:
        self.seen.append(request.native_body)
        return None


def _router(name: str, provider: Any) -> Router:
    return Router(name, [Deployment(name, provider, 1.0, CooldownPolicy())])


def _messages_request() -> ChatRequest:
    raw = {"model": "claude", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}], "x_new": 1}
    return ChatRequest(
        model="claude",
        messages=[{"role": "user", "content": "hi"}],
        raw=raw,
        wire_format="anthropic_messages",
        stream=True,
        forward_headers={"anthropic-beta": "b1"},
    )


async def _drain(router: Router, request: ChatRequest) -> None:
    async for _ in router.stream(request):
        pass


async def test_the_native_body_reaches_only_a_provider_declaring_its_format() -> None:
    anthropic = Recording("claude", frozenset({"anthropic_messages"}), fail=True)
    openai = Recording("gpt", frozenset({"openai_chat"}))
    primary, fallback = _router("claude", anthropic), _router("gpt", openai)
    primary.link([fallback], None)
    request = _messages_request()
    await _drain(primary, request)
    assert anthropic.seen == [NativeBody("anthropic_messages", request.raw, {"anthropic-beta": "b1"})]
    assert openai.seen == [None], "a fallback of another wire format gets the translated request"
    assert request.native_body is None, "the request given to routing is left as it is"


async def test_count_tokens_carries_the_native_body_too() -> None:
    anthropic = Recording("claude", frozenset({"anthropic_messages"}))
    await _router("claude", anthropic).count_tokens(_messages_request())
    assert anthropic.seen and anthropic.seen[0] is not None and anthropic.seen[0].body["x_new"] == 1
