"""`POST /v1/completions` (legacy text completions) against a real gateway process, with the
openai SDK's `client.completions.create`, whole and streamed: the embedded model continuing a
prompt without a chat template (echo, stop, n, a list of prompts, logprobs), an
OpenAI-compatible upstream given the request as sent, a 400 for a provider without the API,
and the ledger row."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.governance.support import GovGateway, start
from tests.support.anthropic_upstream import AnthropicUpstream
from tests.support.openai_upstream import OpenAIUpstream
from tests.support.server import LOCAL_MODEL

UPSTREAM = "legacy-upstream"
CLAUDE = "claude-legacy"
PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def gov(
    tmp_path_factory: pytest.TempPathFactory, upstream: OpenAIUpstream, anthropic_upstream: AnthropicUpstream
) -> Iterator[GovGateway]:
    config = {
        "models": [
            {"name": LOCAL_MODEL, "provider": "local"},
            {
                "name": UPSTREAM,
                "provider": "openai",
                "base_url": upstream.base_url,
                "api_key": "upstream-secret",
                "upstream_model": "gpt-3.5-turbo-instruct",
            },
            {"name": CLAUDE, "provider": "anthropic", "base_url": anthropic_upstream.base_url, "api_key": "a"},
        ]
    }
    server = start(tmp_path_factory.mktemp("legacy"), config)
    yield server
    server.stop()


@pytest.fixture
def sdk(gov: GovGateway) -> openai.OpenAI:
    _, secret = gov.new_key()
    return openai.OpenAI(base_url=gov.v1, api_key=secret, max_retries=0, timeout=120)


def test_the_embedded_model_continues_a_prompt_without_a_chat_template(sdk: openai.OpenAI) -> None:
    answer = sdk.completions.create(model=LOCAL_MODEL, prompt=PROMPT, max_tokens=8, temperature=0, seed=1)
    assert answer.object == "text_completion" and answer.id.startswith("cmpl-")
    assert answer.model == LOCAL_MODEL
    (choice,) = answer.choices
    assert choice.index == 0 and choice.text and choice.finish_reason in ("length", "stop")
    assert answer.usage is not None
    # the prompt's own tokens only: a chat template would add its role markers and system prompt
    assert answer.usage.prompt_tokens <= 8
    assert 1 <= answer.usage.completion_tokens <= 8


def test_a_stream_of_text_completion_chunks_ends_with_usage_and_done(sdk: openai.OpenAI, gov: GovGateway) -> None:
    whole = sdk.completions.create(model=LOCAL_MODEL, prompt=PROMPT, max_tokens=10, temperature=0, seed=3)
    chunks = list(
        sdk.completions.create(
            model=LOCAL_MODEL, prompt=PROMPT, max_tokens=10, temperature=0, seed=3, stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert all(c.object == "text_completion" for c in chunks)
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == whole.choices[0].text
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == [
        whole.choices[0].finish_reason
    ]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens  # type: ignore[union-attr]
    # on the wire: data lines, and [DONE] last
    _, secret = gov.new_key()
    with httpx.stream(
        "POST", gov.v1 + "/completions", headers={"Authorization": f"Bearer {secret}"}, timeout=120,
        json={"model": LOCAL_MODEL, "prompt": "Hi", "max_tokens": 3, "stream": True},
    ) as response:
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"


def test_a_list_of_prompts_with_n_echo_and_stop(sdk: openai.OpenAI) -> None:
    prompts = ["One, two, three,", "Roses are red,"]
    answer = sdk.completions.create(
        model=LOCAL_MODEL, prompt=prompts, n=2, max_tokens=6, temperature=0.7, seed=5, echo=True, stop=["\n"]
    )
    assert [c.index for c in answer.choices] == [0, 1, 2, 3]
    for choice in answer.choices:
        prompt = prompts[choice.index // 2]
        assert choice.text.startswith(prompt)  # echo: the prompt, then its continuation
        assert "\n" not in choice.text[len(prompt):]


def test_max_tokens_zero_with_echo_is_the_prompt_alone(sdk: openai.OpenAI) -> None:
    answer = sdk.completions.create(model=LOCAL_MODEL, prompt=PROMPT, max_tokens=0, echo=True)
    assert answer.choices[0].text == PROMPT and answer.choices[0].finish_reason == "length"
    assert answer.usage is not None and answer.usage.completion_tokens == 0


def test_logprobs_in_the_legacy_shape(sdk: openai.OpenAI) -> None:
    answer = sdk.completions.create(model=LOCAL_MODEL, prompt=PROMPT, max_tokens=5, temperature=0, logprobs=2)
    choice = answer.choices[0]
    logprobs = choice.logprobs
    assert logprobs is not None and logprobs.tokens and logprobs.token_logprobs and logprobs.text_offset
    assert "".join(logprobs.tokens) == choice.text
    assert len(logprobs.tokens) == len(logprobs.token_logprobs) == len(logprobs.text_offset)
    assert all(lp <= 0 for lp in logprobs.token_logprobs)
    assert all(isinstance(top, dict) and 1 <= len(top) <= 2 for top in logprobs.top_logprobs or [])
    offsets = [0]
    for token in logprobs.tokens[:-1]:
        offsets.append(offsets[-1] + len(token))
    assert logprobs.text_offset == offsets


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"suffix": "and that is all."}, "suffix"),
        ({"best_of": 2}, "best_of"),
        ({"echo": True, "logprobs": 1}, "echo"),
        ({"logprobs": 9}, "logprobs"),
        ({"prompt": [1, 2, 3]}, "prompt"),
        ({"prompt": []}, "prompt"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ],
)
def test_what_the_embedded_model_cannot_do_is_a_400(gov: GovGateway, extra: dict[str, Any], param: str) -> None:
    _, secret = gov.new_key()
    body = {"model": LOCAL_MODEL, "prompt": PROMPT, "max_tokens": 2, **extra}
    response = httpx.post(gov.v1 + "/completions", json=body, headers={"Authorization": f"Bearer {secret}"}, timeout=60)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error"


def test_an_openai_compatible_upstream_gets_the_request_as_sent(sdk: openai.OpenAI, upstream: OpenAIUpstream) -> None:
    upstream.reset()
    answer = sdk.completions.create(
        model=UPSTREAM, prompt=["alpha beta gamma", "one two"], suffix="!", max_tokens=20, logit_bias={"50256": -100}
    )
    sent = upstream.requests[-1]
    assert sent["model"] == "gpt-3.5-turbo-instruct" and sent["suffix"] == "!"
    assert sent["prompt"] == ["alpha beta gamma", "one two"] and sent["logit_bias"] == {"50256": -100}
    assert sent["stream"] is False
    assert [c.text for c in answer.choices] == ["gamma beta alpha", "two one"]
    assert answer.model == UPSTREAM
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (7, 3)  # type: ignore[union-attr]

    chunks = list(sdk.completions.create(model=UPSTREAM, prompt="x y", stream=True))
    assert "".join(c.choices[0].text for c in chunks if c.choices and c.choices[0].index == 0) == "y x "
    assert upstream.requests[-1]["stream_options"] == {"include_usage": True}  # the gateway meters it
    assert all(c.usage is None for c in chunks)  # the client did not ask for usage


def test_a_provider_without_legacy_completions_is_a_clear_400(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.completions.create(model=CLAUDE, prompt="hi")
    body: Any = refused.value.body
    assert body["code"] == "completions_not_supported" and "anthropic" in body["message"]


def test_the_ledger_row(gov: GovGateway) -> None:
    key_id, secret = gov.new_key()
    client = openai.OpenAI(base_url=gov.v1, api_key=secret, max_retries=0, timeout=60)
    raw = client.completions.with_raw_response.create(model=UPSTREAM, prompt="a b", max_tokens=4)
    (row,) = gov.rows(key_id, 1)
    assert row["request_id"] == raw.headers["x-request-id"]
    assert (row["door"], row["model"], row["upstream_model"], row["status"]) == (
        "completions", UPSTREAM, "gpt-3.5-turbo-instruct", 200
    )
    assert (row["prompt_tokens"], row["completion_tokens"], row["usage_source"]) == (7, 3, "upstream")
