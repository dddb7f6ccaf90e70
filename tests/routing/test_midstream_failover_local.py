"""The embedded model as a mid-stream fail-over target: its chat template is rendered with the
assistant's turn left open, so it continues the text another deployment began."""

from __future__ import annotations

from typing import Any

from sluicegate.core.events import Finish, Seam, Started, TextDelta, Usage
from sluicegate.providers.local.provider import LocalProvider
from tests.routing.conftest import chat, openai, routers
from testsupport.fault_upstream import FaultUpstream


async def test_the_embedded_model_continues_an_answer_a_remote_deployment_began(a: FaultUpstream) -> None:
    a.enqueue("reset:after=2")
    model = {
        "name": "m",
        "routing": "ordered",
        "cooldown": False,
        "failover": {"mid_stream": True},
        "deployments": [
            openai(a.base_url, name="remote", continue_final_message=True),
            {"name": "embedded", "provider": "local"},
        ],
    }
    request = chat("m")
    request.max_tokens, request.temperature = 6, 0.0
    async with routers(model) as built:
        seen: list[Any] = [event async for batch in built["m"].stream(request) for event in batch]
        local = built["m"].deployments[1].provider
        assert isinstance(local, LocalProvider)
        loaded = local._check_loaded()
        user = {"role": "user", "content": "Say hello."}
        opened = loaded.prompt_tokens([user, {"role": "assistant", "content": "Hello wor", "prefill": "true"}])
        closed = loaded.prompt_tokens([user, {"role": "assistant", "content": "Hello wor"}])
        head = loaded.prompt_tokens([user])
        as_text = loaded.llama.detokenize(opened, special=True).decode()
        whole_turn = loaded.llama.detokenize(closed, special=True).decode()
    text = "".join(event.text for event in seen if isinstance(event, TextDelta))
    assert text.startswith("w0 w1 ") and len(text) > len("w0 w1 ")
    assert sum(isinstance(event, Started) for event in seen) == 1
    (seam,) = [event for event in seen if isinstance(event, Seam)]
    assert (seam.deployment, seam.to, seam.offset) == ("remote", "embedded", 6)
    assert len([event for event in seen if isinstance(event, Finish)]) == 1
    (usage,) = [event for event in seen if isinstance(event, Usage)]
    assert usage.completion_tokens >= 1 + seam.usage.completion_tokens
    # the turn is opened as for a new answer, then the text so far, and not closed
    assert opened[: len(head)] == head and as_text.endswith("Hello wor")
    assert not whole_turn.endswith("Hello wor")
