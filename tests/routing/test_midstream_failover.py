"""Mid-stream fail-over in-process, over two real fault upstreams: the first resets its TCP
connection after N chunks, the next deployment continues the answer from the text so far."""

from __future__ import annotations

from typing import Any

import pytest

from sluicegate.core.events import Batch, Finish, Seam, Started, TextDelta, ToolCallDelta, Usage
from sluicegate.core.request import ChatRequest
from sluicegate.errors import UpstreamError
from sluicegate.routing.router import Router
from tests.routing.conftest import chat, openai, routers
from tests.support.openai_upstream import OpenAIUpstream, Reply, chunk
from testsupport.fault_upstream import ARGUMENTS, Fault, FaultUpstream

FULL = Fault().text()  # w0 w1 w2 w3 w4
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]


def entry(*deployments: dict[str, Any], mid_stream: bool = True) -> dict[str, Any]:
    return {
        "name": "m",
        "routing": "ordered",
        "cooldown": False,
        "failover": {"mid_stream": mid_stream},
        "deployments": list(deployments),
    }


def continuing(url: str, **fields: Any) -> dict[str, Any]:
    return openai(url, continue_final_message=True, **fields)


async def events(router: Router, request: ChatRequest | None = None) -> list[Any]:
    batches: list[Batch] = [batch async for batch in router.stream(request or chat("m"))]
    return [event for batch in batches for event in batch]


def text_of(seen: list[Any]) -> str:
    return "".join(event.text for event in seen if isinstance(event, TextDelta))


async def test_an_answer_cut_after_two_chunks_is_continued_by_the_next_deployment(
    a: FaultUpstream, b: FaultUpstream
) -> None:
    a.enqueue("reset:after=2")
    request = chat("m")
    request.max_tokens = 50
    async with routers(entry(continuing(a.base_url, name="a"), continuing(b.base_url, name="b"))) as built:
        seen = await events(built["m"], request)
    assert text_of(seen) == FULL  # once each word, nothing doubled at the seam
    assert sum(isinstance(event, Started) for event in seen) == 1
    (seam,) = [event for event in seen if isinstance(event, Seam)]
    assert (seam.offset, seam.deployment, seam.to, seam.model, seam.to_model) == (6, "a", "b", "m", "m")
    assert seam.usage.completion_tokens == 2 and seam.usage.estimated  # "w0 w1 ": 6 characters
    asked = b.attempts[0].body
    assert asked["messages"][-1] == {"role": "assistant", "content": "w0 w1 "}
    assert asked["continue_final_message"] is True and asked["add_generation_prompt"] is False
    assert "fault" not in asked  # the continuation is built anew, not the client's body
    assert asked["max_completion_tokens"] == 50 - 2  # less what a wrote
    (usage,) = [event for event in seen if isinstance(event, Usage)]
    assert usage.completion_tokens == 3 + 2  # b's three words, plus a's two
    assert usage.prompt_tokens == 3 + seam.usage.prompt_tokens
    assert [event.reason for event in seen if isinstance(event, Finish)] == ["stop"]
    assert built["m"].stats.continued == 1


async def test_without_the_option_the_client_gets_the_error_as_before(a: FaultUpstream, b: FaultUpstream) -> None:
    a.enqueue("reset:after=2")
    model = entry(continuing(a.base_url, name="a"), continuing(b.base_url, name="b"), mid_stream=False)
    async with routers(model) as built:
        seen: list[Any] = []
        with pytest.raises(UpstreamError):
            async for batch in built["m"].stream(chat("m")):
                seen.extend(batch)
    assert text_of(seen) == "w0 w1 "
    assert b.attempts == []


async def test_a_deployment_that_cannot_continue_is_not_a_target(a: FaultUpstream, b: FaultUpstream) -> None:
    a.enqueue("reset:after=2")
    hosted = openai(b.base_url, name="hosted")  # no continue_final_message: a hosted OpenAI endpoint
    async with routers(entry(continuing(a.base_url, name="a"), hosted)) as built:
        with pytest.raises(UpstreamError):
            await events(built["m"])
    assert b.attempts == []
    a.enqueue("reset:after=2")
    model = entry(continuing(a.base_url, name="a"), hosted, continuing(b.base_url, name="vllm"))
    async with routers(model) as built:
        seen = await events(built["m"])
    (seam,) = [event for event in seen if isinstance(event, Seam)]
    assert seam.to == "vllm" and text_of(seen) == FULL
    assert len(b.attempts) == 1  # the hosted one was passed over, not asked


async def test_the_first_target_failing_to_start_passes_to_the_next(a: FaultUpstream, b: FaultUpstream) -> None:
    a.enqueue("reset:after=1", "status:code=503")  # a dies, then refuses to continue
    model = entry(continuing(a.base_url, name="a"), continuing(a.base_url, name="a2"), continuing(b.base_url, name="b"))
    async with routers(model) as built:
        seen = await events(built["m"])
    assert text_of(seen) == FULL
    (seam,) = [event for event in seen if isinstance(event, Seam)]
    assert (seam.deployment, seam.to, seam.offset) == ("a", "b", 3)


async def test_a_tool_call_cut_mid_way_is_restarted_whole(a: FaultUpstream, b: FaultUpstream) -> None:
    a.enqueue("reset:after=3")  # `w0 `, the call's opening, one piece of its arguments
    request = chat("m")
    request.tools = TOOLS
    request.raw["tools"] = TOOLS
    async with routers(entry(continuing(a.base_url, name="a"), continuing(b.base_url, name="b"))) as built:
        seen = await events(built["m"], request)
    assert text_of(seen) == "w0 "
    calls = [event for event in seen if isinstance(event, ToolCallDelta)]
    assert len({call.id for call in calls if call.id}) == 1  # one call, b's: a's half never went out
    assert "".join(call.arguments for call in calls) == ARGUMENTS
    assert calls[0].id is not None and calls[0].id.startswith("call_3_")  # b continued after `w0 `
    (seam,) = [event for event in seen if isinstance(event, Seam)]
    assert seam.restarted_calls == 1 and seam.offset == 3
    assert b.attempts[0].body["messages"][-1] == {"role": "assistant", "content": "w0 "}
    assert [event.reason for event in seen if isinstance(event, Finish)] == ["tool_calls"]


async def test_a_fallback_the_key_may_not_use_does_not_continue(a: FaultUpstream, b: FaultUpstream) -> None:
    a.enqueue("reset:after=2")
    model = {"name": "m", "failover": True, "fallbacks": ["other"], **continuing(a.base_url)}
    other = {"name": "other", **continuing(b.base_url)}
    async with routers(model, other) as built:
        request = chat("m")
        request.may_use = lambda name: name == "m"
        with pytest.raises(UpstreamError):
            await events(built["m"], request)
        assert b.attempts == []
        a.enqueue("reset:after=2")
        seen = await events(built["m"])  # a key without a model list: the fallback continues
    (seam,) = [event for event in seen if isinstance(event, Seam)]
    assert (seam.to, seam.to_model) == ("other", "other")
    assert text_of(seen) == FULL


async def test_an_upstream_failing_after_its_finish_ends_the_answer_without_a_seam(
    upstream: OpenAIUpstream, b: FaultUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    upstream.reset()
    whole = [chunk(role="assistant", content=""), chunk("w0 "), chunk(finish="stop")]
    upstream.enqueue(Reply(chunks=whole, hang_after=True))  # then silence: the idle timeout
    model = {**entry(continuing(upstream.base_url, name="a"), continuing(b.base_url, name="b")), "timeouts": {"idle": 0.5}}
    async with routers(model) as built:
        seen = await events(built["m"])
    assert text_of(seen) == "w0 "
    assert [event.reason for event in seen if isinstance(event, Finish)] == ["stop"]
    assert not any(isinstance(event, Seam) for event in seen)
    assert b.attempts == []
    assert "the answer ended before its upstream failed" in caplog.text  # the timeout came, and passed
