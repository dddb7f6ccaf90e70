"""The "did you mean" of an unknown model: a part of a real name finds it, real names before
aliases, and an alias only for a near-miss of its own spelling."""

from __future__ import annotations

import pytest

from sluicegate.suggest import suggest_model

MODELS = ["smollm2-135m-instruct", "upstream-gpt", "claude-sonnet-4-5", "openai/*"]
ALIASES = ["gpt-4o", "gpt-4o-mini"]


@pytest.mark.parametrize(
    ("asked", "offered"),
    [
        ("smollm2", "smollm2-135m-instruct"),  # a prefix
        ("SmolLM2-135M", "smollm2-135m-instruct"),
        ("135m-instruct", "smollm2-135m-instruct"),  # inside
        ("smollm2-135m-instruc", "smollm2-135m-instruct"),
        ("smollm2-135m-instruct-q8", "smollm2-135m-instruct"),  # the name inside what was asked
        ("claude-sonet-4-5", "claude-sonnet-4-5"),  # a misspelling
        ("gpt-4o-mnii", "gpt-4o-mini"),  # a near-miss of an alias
        ("gpt-5", None),  # not the alias of an unrelated model
        ("", None),
        ("llama-3", None),
    ],
)
def test_what_an_unknown_model_is_offered(asked: str, offered: str | None) -> None:
    assert suggest_model(asked, MODELS, ALIASES) == offered
