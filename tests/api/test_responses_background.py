"""Background responses through the official OpenAI SDK against a live gateway: created
detached from the connection, polled, streamed and resumed from a sequence number, cancelled;
with the embedded model and every kind of upstream (OpenAI-compatible, Anthropic, Gemini)."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from tests.support.anthropic_upstream import AnthropicUpstream
from tests.support.gemini_upstream import GeminiUpstream
from tests.support.openai_calls import usage_chunk
from tests.support.openai_upstream import OpenAIUpstream, Reply, chunk
from tests.support.server import LOCAL_MODEL, Gateway, cli, start_gateway

DONE = b"data: [DONE]\n\n"
WORDS = ["The ", "river ", "runs ", "to ", "the ", "sea ", "at ", "last."]
TERMINAL = ("completed", "incomplete", "failed", "cancelled")


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory,
    upstream: OpenAIUpstream,
    anthropic_upstream: AnthropicUpstream,
    gemini_upstream: GeminiUpstream,
) -> Iterator[Gateway]:
    config = {
        "models": [
            {"name": LOCAL_MODEL, "provider": "local", "queue_size": 8},
            {"name": "up-openai", "provider": "openai", "base_url": upstream.base_url, "api_key": "k"},
            {"name": "up-claude", "provider": "anthropic", "base_url": anthropic_upstream.base_url, "api_key": "k"},
            {
                "name": "up-gemini",
                "provider": "gemini",
                "base_url": gemini_upstream.base_url.removesuffix("/"),
                "api_key": "k",
            },
        ],
        "responses": {"background_per_key": 2},
    }
    server = start_gateway(tmp_path_factory.mktemp("background"), config)
    yield server
    server.stop()


@pytest.fixture
def client(gateway: Gateway) -> OpenAI:
    return OpenAI(base_url=gateway.v1, api_key=gateway.api_key, max_retries=0)


def text_reply(release: threading.Event | None = None, release_at: int = 0) -> Reply:
    chunks = [chunk(role="assistant", content="")] + [chunk(word) for word in WORDS]
    chunks += [chunk(finish="stop"), usage_chunk(12, len(WORDS)), DONE]
    return Reply(chunks=chunks, release=release, release_at=release_at)


def wait_until_done(client: OpenAI, response_id: str) -> Any:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        response = client.responses.retrieve(response_id)
        if response.status in TERMINAL:
            return response
        time.sleep(0.05)
    raise AssertionError(f"{response_id} did not finish")


def streamed_text(events: list[Any]) -> str:
    return "".join(event.delta for event in events if event.type == "response.output_text.delta")


# --- create, poll ------------------------------------------------------------------------


def test_a_background_response_is_queued_then_completes_with_the_embedded_model(client: OpenAI) -> None:
    created = client.responses.create(
        model=LOCAL_MODEL, input="Write a short poem about rivers.", background=True, max_output_tokens=8
    )
    assert created.background is True and created.status == "queued" and created.output == []
    done = wait_until_done(client, created.id)
    assert done.status in ("completed", "incomplete") and done.background is True
    assert done.output_text.strip()
    assert done.usage is not None and 0 < done.usage.output_tokens <= 8


def test_background_needs_store(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model=LOCAL_MODEL, input="hi", background=True, store=False)
    assert caught.value.body["param"] == "background"  # type: ignore[index]


# --- stream, leave, resume ---------------------------------------------------------------


def test_a_stream_left_midway_resumes_after_its_last_sequence_number(client: OpenAI, clean_upstream: OpenAIUpstream) -> None:
    release = threading.Event()
    clean_upstream.enqueue(text_reply(release, release_at=4))
    seen: list[Any] = []
    stream = client.responses.create(model="up-openai", input="Tell me.", background=True, stream=True)
    for event in stream:
        seen.append(event)
        if len([e for e in seen if e.type == "response.output_text.delta"]) == 2:
            break
    stream.close()  # the client leaves; the generation goes on
    assert [event.type for event in seen[:3]] == ["response.created", "response.queued", "response.in_progress"]
    assert seen[0].response.status == "queued" and seen[0].response.background is True
    response_id, cursor = seen[0].response.id, seen[-1].sequence_number
    release.set()
    rest = list(client.responses.retrieve(response_id, stream=True, starting_after=cursor))
    assert [event.sequence_number for event in rest] == list(range(cursor + 1, cursor + 1 + len(rest)))
    assert rest[-1].type == "response.completed"
    assert streamed_text(seen) + streamed_text(rest) == "".join(WORDS)
    assert rest[-1].response.output_text == "".join(WORDS)
    # the SDK's own helper replays from the start and skips what the client has
    with client.responses.stream(response_id=response_id, starting_after=cursor) as again:
        events = list(again)
        final = again.get_final_response()
    assert events[0].sequence_number == cursor + 1 and final.output_text == "".join(WORDS)
    assert client.responses.retrieve(response_id).status == "completed"


@pytest.mark.parametrize("model", ["up-claude", "up-gemini", LOCAL_MODEL])
def test_every_kind_of_model_resumes(client: OpenAI, model: str) -> None:
    kwargs: dict[str, Any] = {"max_output_tokens": 6} if model == LOCAL_MODEL else {}
    stream = client.responses.create(model=model, input="echo these words", background=True, stream=True, **kwargs)
    first = next(iter(stream))
    stream.close()
    assert first.type == "response.created"
    whole = list(client.responses.retrieve(first.response.id, stream=True, starting_after=0))
    assert whole[0].sequence_number == 1 and whole[-1].type in ("response.completed", "response.incomplete")
    text = streamed_text(whole)
    assert text and whole[-1].response.output_text == text
    if model != LOCAL_MODEL:
        assert "echo these words" in text
    assert client.responses.retrieve(first.response.id).output_text == text


def test_only_background_responses_stream_again(client: OpenAI, clean_upstream: OpenAIUpstream) -> None:
    response = client.responses.create(model="up-openai", input="hello")
    with pytest.raises(openai.BadRequestError):
        list(client.responses.retrieve(response.id, stream=True))


# --- cancel ------------------------------------------------------------------------------


def test_cancel_stops_the_generation(client: OpenAI, clean_upstream: OpenAIUpstream, gateway: Gateway) -> None:
    release = threading.Event()
    clean_upstream.enqueue(text_reply(release, release_at=3))
    stream = client.responses.create(model="up-openai", input="Tell me.", background=True, stream=True)
    seen = []
    for event in stream:
        seen.append(event)
        if event.type == "response.output_text.delta":
            break
    response_id = seen[0].response.id
    cancelled = client.responses.cancel(response_id)
    assert cancelled.status == "cancelled"
    rest = list(stream)  # the live stream just ends
    assert all(event.type != "response.completed" for event in rest)
    assert clean_upstream.wait_for_disconnects(1)  # the upstream call was stopped
    release.set()
    again = client.responses.cancel(response_id)  # twice is as once
    assert again.status == "cancelled" and again.output_text == "The river "  # what came before it stopped
    assert client.responses.retrieve(response_id).status == "cancelled"


def test_a_synchronous_response_cannot_be_cancelled(client: OpenAI, clean_upstream: OpenAIUpstream) -> None:
    response = client.responses.create(model="up-openai", input="hello")
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.cancel(response.id)
    assert caught.value.body["message"] == "Cannot cancel a synchronous response."  # type: ignore[index]


def test_background_responses_are_the_owners_only(client: OpenAI, gateway: Gateway, clean_upstream: OpenAIUpstream) -> None:
    created = client.responses.create(model="up-openai", input="mine", background=True)
    other_key = cli("keys", "create", "--name", "other", data_dir=gateway.data_dir).strip().splitlines()[-1]
    other = OpenAI(base_url=gateway.v1, api_key=other_key, max_retries=0)
    for call in (
        lambda: other.responses.retrieve(created.id),
        lambda: other.responses.cancel(created.id),
        lambda: list(other.responses.retrieve(created.id, stream=True)),
    ):
        with pytest.raises(openai.NotFoundError):
            call()
    assert wait_until_done(client, created.id).status == "completed"


def test_too_many_background_responses_in_flight_is_a_429(client: OpenAI, clean_upstream: OpenAIUpstream) -> None:
    release = threading.Event()
    clean_upstream.enqueue(text_reply(release), text_reply(release))
    held = [client.responses.create(model="up-openai", input="wait", background=True) for _ in range(2)]
    try:
        with pytest.raises(openai.RateLimitError) as caught:
            client.responses.create(model="up-openai", input="one more", background=True)
        assert caught.value.body["code"] == "rate_limit_exceeded"  # type: ignore[index]
    finally:
        release.set()
    for response in held:
        assert wait_until_done(client, response.id).status == "completed"


def test_a_raw_resume_is_server_sent_events_with_sequence_numbers(gateway: Gateway, client: OpenAI) -> None:
    created = client.responses.create(model="up-openai", input="raw", background=True)
    wait_until_done(client, created.id)
    headers = {"authorization": f"Bearer {gateway.api_key}"}
    url = f"{gateway.v1}/responses/{created.id}?stream=true&starting_after=2"
    with httpx.stream("GET", url, headers=headers, timeout=30) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        body = response.read().decode()
    assert body.startswith("event: response.") and '"sequence_number":3,' in body
    assert "event: response.completed\n" in body


def test_at_the_shutdown_deadline_a_background_response_ends_failed(
    tmp_path: Path, clean_upstream: OpenAIUpstream
) -> None:
    config = {
        "server": {"shutdown_timeout_s": 0.5},
        "models": [{"name": "up-openai", "provider": "openai", "base_url": clean_upstream.base_url, "api_key": "k"}],
    }
    server = start_gateway(tmp_path, config)
    never = threading.Event()
    clean_upstream.enqueue(text_reply(never, release_at=3))
    try:
        sdk = OpenAI(base_url=server.v1, api_key=server.api_key, max_retries=0)
        created = sdk.responses.create(model="up-openai", input="Tell me.", background=True)
        while sdk.responses.retrieve(created.id).status == "queued":
            time.sleep(0.05)
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(30) == 0
    finally:
        never.set()
        server.stop()
    again = start_gateway(tmp_path, config)  # the same data dir: the record was settled before the exit
    try:
        sdk = OpenAI(base_url=again.v1, api_key=server.api_key, max_retries=0)
        ended = sdk.responses.retrieve(created.id)
        assert ended.status == "failed" and ended.error is not None
        assert ended.output_text == "The river "
    finally:
        again.stop()
