"""The embedded model honours logprobs, top_logprobs and logit_bias, names itself with a
system_fingerprint, and refuses what it cannot honour by name: through the OpenAI SDK."""

from __future__ import annotations

import anthropic
import openai
import pytest
from openai import OpenAI

from tests.support.server import Gateway

PROMPT = [{"role": "user", "content": "Name three colours."}]


@pytest.fixture
def client(gateway: Gateway) -> OpenAI:
    return OpenAI(base_url=gateway.v1, api_key=gateway.api_key, max_retries=0)


def test_streamed_logprobs_cover_every_token_of_the_text(client: OpenAI, gateway: Gateway) -> None:
    stream = client.chat.completions.create(
        model=gateway.model, messages=PROMPT, stream=True, max_tokens=12, logprobs=True, top_logprobs=3
    )
    text, tokens = [], []
    for chunk in stream:
        choice = chunk.choices[0]
        if choice.delta.content:
            text.append(choice.delta.content)
            assert choice.logprobs is not None and choice.logprobs.content
            tokens.extend(choice.logprobs.content)
    assert text
    assert "".join(t.token for t in tokens) == "".join(text)
    for entry in tokens:
        assert entry.logprob <= 0
        assert bytes(entry.bytes or []).decode("utf-8", errors="replace") == entry.token
        assert len(entry.top_logprobs) == 3
        alternatives = [alt.logprob for alt in entry.top_logprobs]
        assert alternatives == sorted(alternatives, reverse=True)
        assert entry.logprob <= alternatives[0] + 1e-4  # nothing is likelier than the best


def test_whole_answer_logprobs(client: OpenAI, gateway: Gateway) -> None:
    answer = client.chat.completions.create(
        model=gateway.model, messages=PROMPT, max_tokens=10, logprobs=True, temperature=0, seed=1
    )
    choice = answer.choices[0]
    assert choice.logprobs is not None and choice.logprobs.content
    assert "".join(t.token for t in choice.logprobs.content) == choice.message.content
    assert all(t.top_logprobs == [] for t in choice.logprobs.content)
    # greedy decoding picks the likeliest token, whose log-probability is the largest
    assert all(t.logprob > -5 for t in choice.logprobs.content)


def test_without_logprobs_there_are_none(client: OpenAI, gateway: Gateway) -> None:
    answer = client.chat.completions.create(model=gateway.model, messages=PROMPT, max_tokens=4)
    assert answer.choices[0].logprobs is None


def test_logit_bias_bans_the_greedy_first_token(client: OpenAI, gateway: Gateway) -> None:
    def first_token(**extra: object) -> tuple[str, int]:
        answer = client.chat.completions.create(
            model=gateway.model,
            messages=PROMPT,
            max_tokens=1,
            temperature=0,
            seed=7,
            logprobs=True,
            top_logprobs=5,
            **extra,  # type: ignore[arg-type]
        )
        content = answer.choices[0].logprobs.content  # type: ignore[union-attr]
        assert content
        return content[0].token, len(content[0].bytes or [])

    greedy, _ = first_token()
    # a -100 bias on every id spelling the greedy token makes it impossible
    banned_ids = _token_ids_of(client, gateway, greedy)
    assert banned_ids
    changed, _ = first_token(logit_bias={str(i): -100 for i in banned_ids})
    assert changed != greedy


def _token_ids_of(client: OpenAI, gateway: Gateway, token: str) -> list[int]:
    """The ids whose text is `token`, read from the model's own vocabulary."""
    from llama_cpp import Llama

    from sluicegate.providers.local.model import bundled_model_path

    llama = Llama(model_path=str(bundled_model_path()), n_ctx=64, verbose=False, vocab_only=True)
    return [i for i in range(llama.n_vocab()) if llama.detokenize([i]).decode("utf-8", "replace") == token]


def test_logit_bias_outside_the_vocabulary_is_a_400(client: OpenAI, gateway: Gateway) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model=gateway.model, messages=PROMPT, max_tokens=2, logit_bias={"99999999": 5}
        )
    assert info.value.body["param"] == "logit_bias"  # type: ignore[index]


def test_answers_carry_a_system_fingerprint(client: OpenAI, gateway: Gateway) -> None:
    answer = client.chat.completions.create(model=gateway.model, messages=PROMPT, max_tokens=2)
    assert answer.system_fingerprint and answer.system_fingerprint.startswith("fp_")
    chunks = list(
        client.chat.completions.create(model=gateway.model, messages=PROMPT, max_tokens=2, stream=True)
    )
    assert {c.system_fingerprint for c in chunks[1:]} == {answer.system_fingerprint}


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("reasoning_effort", "high", "unsupported_parameter"),
        ("audio", {"voice": "alloy", "format": "mp3"}, "unsupported_parameter"),
        ("web_search_options", {}, "unsupported_parameter"),
        ("made_up_parameter", 1, "unknown_parameter"),
    ],
)
def test_what_it_cannot_honour_is_refused_by_name(
    client: OpenAI, gateway: Gateway, field: str, value: object, code: str
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model=gateway.model, messages=PROMPT, max_tokens=2, extra_body={field: value}
        )
    body = info.value.body
    assert isinstance(body, dict)
    assert body["param"] == field and body["code"] == code and field in body["message"]


def test_descriptive_fields_are_accepted(client: OpenAI, gateway: Gateway) -> None:
    answer = client.chat.completions.create(
        model=gateway.model, messages=PROMPT, max_tokens=2, user="u-1", metadata={"team": "a"}, store=False
    )
    assert answer.choices[0].message.content is not None


def test_other_doors_are_refused_by_the_name_they_use(client: OpenAI, gateway: Gateway) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model=gateway.model, input="hi", reasoning={"effort": "low"})
    body = info.value.body
    assert isinstance(body, dict) and body["param"] == "reasoning.effort"
    assert body["code"] == "unsupported_parameter"


def test_the_messages_door_is_refused_by_its_own_name(gateway: Gateway) -> None:
    client = anthropic.Anthropic(base_url=gateway.base_url, api_key=gateway.api_key, max_retries=0)
    with pytest.raises(anthropic.BadRequestError) as info:
        client.messages.create(
            model=gateway.model,
            max_tokens=2048,
            messages=[{"role": "user", "content": "hi"}],
            thinking={"type": "enabled", "budget_tokens": 1024},
        )
    assert "'thinking'" in info.value.message
