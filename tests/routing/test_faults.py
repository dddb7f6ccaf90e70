"""Every upstream fault through a real gateway process, as the `openai` SDK sees it, and as
the upstream saw it. Before the first byte a fault is an HTTP error (or a fail-over); after
it, the text so far, then an error event the SDK raises as `APIError`, then [DONE]."""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from tests.support.server import Gateway, start_gateway
from testsupport.fault_upstream import Fault, FaultUpstream

MESSAGES: Any = [{"role": "user", "content": "hi"}]
FULL = Fault().text()


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, upstream_a: FaultUpstream, closed_url: str
) -> Iterator[Gateway]:
    def up(**fields: Any) -> dict[str, Any]:
        return {"provider": "openai", "base_url": upstream_a.base_url, "api_key": "k", **fields}

    dead = {"provider": "openai", "base_url": closed_url, "api_key": "k"}
    config = {
        "models": [
            {"name": "solo", **up()},
            {"name": "dead", **dead},
            {"name": "quick", "timeouts": {"first_byte": 0.5, "idle": 0.5}, **up()},
            {"name": "pair", "routing": "ordered", "cooldown": False, "deployments": [dead, up()]},
            {"name": "gpt", "deployments": [{"name": "east", **dead}, {"name": "west", **up()}]},
            {"name": "primary", "fallbacks": ["solo"], **dead},
        ]
    }
    server = start_gateway(tmp_path_factory.mktemp("faults"), config)
    yield server
    server.stop()


@pytest.fixture
def client(gateway: Gateway, a: FaultUpstream) -> OpenAI:
    return OpenAI(base_url=gateway.v1, api_key=gateway.api_key, max_retries=0, timeout=20)


def read_stream(
    client: OpenAI, model: str, fault: str | None = None
) -> tuple[dict[str, str], str, list[str | None]]:
    """Headers, the text, and the finish reasons of a stream read to its end."""
    extra = {"fault": fault} if fault else None
    with client.chat.completions.with_streaming_response.create(
        model=model, messages=MESSAGES, stream=True, extra_body=extra
    ) as response:
        text, finishes = "", []
        for chunk in response.parse():
            for choice in chunk.choices:
                text += choice.delta.content or ""
                finishes.append(choice.finish_reason)
        return dict(response.headers), text, [f for f in finishes if f]


def read_stream_until_error(client: OpenAI, model: str, fault: str) -> tuple[str, openai.APIError]:
    text = ""
    with pytest.raises(openai.APIError) as info:
        stream = client.chat.completions.create(
            model=model, messages=MESSAGES, stream=True, extra_body={"fault": fault}
        )
        for chunk in stream:
            for choice in chunk.choices:
                assert choice.finish_reason is None
                text += choice.delta.content or ""
    return text, info.value


# --- faults after the upstream committed: the text so far, then an error event --------------


@pytest.mark.parametrize(
    ("fault", "model", "code", "words"),
    [
        ("reset:after=3", "solo", "upstream_error", "closed the stream early"),
        ("truncated:after=2", "solo", "upstream_error", "sent malformed data in its stream"),
        ("invalid_json:after=2", "solo", "upstream_error", "sent malformed data in its stream"),
        ("no_finish:after=2", "solo", "upstream_error", "closed the stream before it finished"),
        ("stall:after=2,seconds=30", "quick", "upstream_timeout", "went silent mid-stream"),
    ],
)
def test_a_stream_broken_after_its_first_token(
    client: OpenAI, a: FaultUpstream, fault: str, model: str, code: str, words: str
) -> None:
    text, error = read_stream_until_error(client, model, fault)
    assert text == Fault.parse(fault).text()
    assert type(error) is openai.APIError  # raised by the SDK from the error event
    assert isinstance(error.body, dict)
    assert error.body["type"] == "upstream_error" and error.body["code"] == code
    assert words in error.message and "aiohttp" not in error.message and "Error" not in error.message
    assert len(a.attempts) == 1  # nothing is retried once the client has tokens


@pytest.mark.parametrize("fault", ["ok", "no_done", "delay:seconds=0.2"])
def test_complete_answers(client: OpenAI, a: FaultUpstream, fault: str) -> None:
    # a stream that ends without [DONE] after its finish reason has said everything
    headers, text, finishes = read_stream(client, "solo", fault)
    assert (text, finishes) == (FULL, ["stop"])
    assert (headers["x-sluicegate-deployment"], headers["x-sluicegate-attempts"]) == ("solo", "1")


# --- faults before the upstream committed: a plain HTTP error --------------------------------


@pytest.mark.parametrize("stream", [True, False])
@pytest.mark.parametrize(
    ("fault", "error_class", "status", "code", "retry_after"),
    [
        ("status:code=429,retry_after=3", openai.RateLimitError, 429, "rate_limit_exceeded", "3"),
        ("status:code=429", openai.RateLimitError, 429, "rate_limit_exceeded", None),
        ("status:code=500", openai.InternalServerError, 502, "upstream_error", None),
        ("status:code=503,retry_after=2", openai.InternalServerError, 503, "service_unavailable", "2"),
        ("status:code=503", openai.InternalServerError, 503, "service_unavailable", None),
        ("status:code=401", openai.InternalServerError, 502, "upstream_error", None),
        ("status:code=404", openai.InternalServerError, 502, "upstream_error", None),
        ("status:code=400", openai.BadRequestError, 400, None, None),
    ],
)
def test_an_upstream_error_status(
    client: OpenAI,
    a: FaultUpstream,
    stream: bool,
    fault: str,
    error_class: type[openai.APIStatusError],
    status: int,
    code: str | None,
    retry_after: str | None,
) -> None:
    with pytest.raises(error_class) as info:
        client.chat.completions.create(
            model="solo", messages=MESSAGES, stream=stream, extra_body={"fault": fault}
        )
    error = info.value
    assert error.status_code == status and error.code == code
    assert error.response.headers.get("retry-after") == retry_after  # only the upstream's own word
    assert error.response.headers["x-sluicegate-deployment"] == "solo"
    assert len(a.attempts) == 1


@pytest.mark.parametrize("stream", [True, False])
def test_an_unreachable_upstream(client: OpenAI, stream: bool) -> None:
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="dead", messages=MESSAGES, stream=stream)
    assert info.value.status_code == 502 and info.value.code == "upstream_error"
    message: str = info.value.body["message"]  # type: ignore[index]
    assert message.startswith("The upstream of `dead` could not be reached (connection refused). (request id req_")
    assert info.value.response.headers["x-request-id"] in message
    assert info.value.response.headers["x-sluicegate-attempts"] == "1"


@pytest.mark.parametrize("stream", [True, False])
def test_an_upstream_that_does_not_start_answering(client: OpenAI, a: FaultUpstream, stream: bool) -> None:
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(
            model="quick", messages=MESSAGES, stream=stream, extra_body={"fault": "delay:seconds=30"}
        )
    assert info.value.status_code == 504 and info.value.code == "upstream_timeout"
    assert "did not start answering" in info.value.body["message"]  # type: ignore[index]
    assert a.wait_for(lambda u: u.attempts[0].cancelled_at is not None)


@pytest.mark.parametrize(
    ("fault", "model", "status", "words"),
    [
        ("reset:after=1", "solo", 502, "The upstream of `solo` "),
        ("truncated:after=1", "solo", 502, "The upstream of `solo` "),
        ("invalid_json", "solo", 502, "sent an answer that is not valid JSON"),
        ("stall:seconds=30", "quick", 504, "did not start answering"),
    ],
)
def test_a_whole_answer_broken_on_the_way(
    client: OpenAI, a: FaultUpstream, fault: str, model: str, status: int, words: str
) -> None:
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model=model, messages=MESSAGES, extra_body={"fault": fault})
    message = info.value.body["message"]  # type: ignore[index]
    assert info.value.status_code == status and words in message
    assert "Error" not in message and "aiohttp" not in message
    assert len(a.attempts) == 1


# --- fail-over, visible in the headers --------------------------------------------------------


@pytest.mark.parametrize("stream", [True, False])
def test_fail_over_from_a_dead_deployment(
    client: OpenAI, a: FaultUpstream, gateway: Gateway, stream: bool
) -> None:
    response = client.chat.completions.with_raw_response.create(
        model="pair", messages=MESSAGES, stream=stream
    )
    assert response.headers["x-sluicegate-deployment"] == "pair#2"
    assert response.headers["x-sluicegate-attempts"] == "2"
    if stream:
        text = "".join(c.choices[0].delta.content or "" for c in response.parse() if c.choices)
    else:
        text = response.parse().choices[0].message.content or ""
    assert text == FULL and len(a.attempts) == 1
    assert "model pair: deployment pair#1 failed (attempt 1)" in gateway.log()


def test_the_dead_deployment_is_taken_out_after_three_failures(client: OpenAI, a: FaultUpstream) -> None:
    # weighted (the default): east is tried first about half the time until it has failed 3 times
    attempts = []
    for _ in range(30):
        response = client.chat.completions.with_raw_response.create(model="gpt", messages=MESSAGES)
        assert response.headers["x-sluicegate-deployment"] == "west"
        attempts.append(int(response.headers["x-sluicegate-attempts"]))
    assert attempts.count(2) == 3 and set(attempts) == {1, 2}
    assert len(a.attempts) == 30


def test_fallback_to_another_model(client: OpenAI, a: FaultUpstream) -> None:
    response = client.chat.completions.with_raw_response.create(model="primary", messages=MESSAGES)
    assert response.headers["x-sluicegate-deployment"] == "solo"
    assert response.headers["x-sluicegate-attempts"] == "2"
    answer = response.parse()
    assert answer.model == "primary" and answer.choices[0].message.content == FULL


# --- the client leaving -----------------------------------------------------------------------

CANCEL_TIMES: list[float] = []


@pytest.mark.parametrize("run", range(5))
def test_a_client_leaving_mid_stream_cancels_the_upstream(
    gateway: Gateway, a: FaultUpstream, run: int
) -> None:
    body = {"model": "solo", "messages": MESSAGES, "stream": True, "fault": "stall:after=1,seconds=30"}
    headers = {"Authorization": f"Bearer {gateway.api_key}"}
    with httpx.stream("POST", gateway.v1 + "/chat/completions", json=body, headers=headers, timeout=20) as r:
        for line in r.iter_lines():
            if '"w0 "' in line:
                break
        left_at = time.monotonic()  # leaving the block closes the connection
    assert a.wait_for(lambda u: u.attempts[0].cancelled_at is not None, timeout=5)
    cancelled_at = a.attempts[0].cancelled_at
    assert cancelled_at is not None
    CANCEL_TIMES.append(cancelled_at - left_at)
    if len(CANCEL_TIMES) == 5:
        print(
            f"\nupstream cancelled after the client left: {[round(t * 1000, 1) for t in CANCEL_TIMES]} ms,"
            f" median {statistics.median(CANCEL_TIMES) * 1000:.1f} ms"
        )


def test_a_client_leaving_before_the_first_byte_cancels_the_upstream(
    gateway: Gateway, a: FaultUpstream
) -> None:
    body = {"model": "solo", "messages": MESSAGES, "stream": True, "fault": "delay:seconds=30"}
    headers = {"Authorization": f"Bearer {gateway.api_key}"}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(gateway.v1 + "/chat/completions", json=body, headers=headers, timeout=0.5)
    # the upstream sees the cancellation (the deadline only ends a test that would hang: it
    # asks for a 30 s delay, which a gateway that did not cancel would wait out)
    assert a.wait_for(lambda u: u.attempts[0].cancelled_at is not None, timeout=25)


def test_the_gateway_log_names_the_deployment_to_fix(gateway: Gateway, client: OpenAI) -> None:
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(
            model="solo", messages=MESSAGES, extra_body={"fault": "status:code=404"}
        )
    log = gateway.log()
    assert (
        "model entry solo, deployment solo (attempt 1)" in log and "Fix this deployment in the config" in log
    )
