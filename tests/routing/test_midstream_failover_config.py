"""The `failover` setting of a model entry, and its mistakes as one readable line."""

from __future__ import annotations

from pathlib import Path

import pytest

from sluicegate.settings import ConfigError, load_settings
from sluicegate.wiring.build import build_router


def load(tmp_path: Path, models: str) -> object:
    path = tmp_path / "sluicegate.yaml"
    path.write_text("models:\n  " + models + "\n")
    return load_settings(path, data_dir=tmp_path)


def test_the_option_and_its_shorthand_reach_the_router(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        "- {name: m, failover: true, deployments: [{provider: openai, base_url: 'http://127.0.0.1:1/v1',"
        " continue_final_message: true}, {provider: anthropic, api_key: k}]}\n"
        "  - {name: n, provider: openai, base_url: 'http://127.0.0.1:1/v1'}",
    )
    first, second = settings.models  # type: ignore[attr-defined]
    assert first.failover.mid_stream and not second.failover.mid_stream
    router = build_router(first)
    assert router.failover.mid_stream
    assert [d.provider.continues_final for d in router.deployments] == [True, True]
    assert build_router(second).deployments[0].provider.continues_final is False  # hosted OpenAI: cannot


@pytest.mark.parametrize(
    ("models", "words"),
    [
        (
            "- {name: m, provider: local, failover: {mid_strem: true}}",
            "models[0].failover.mid_strem: unknown setting (did you mean 'mid_stream'?)",
        ),
        (
            "- {name: m, deployments: [{provider: local, failover: true}]}",
            "deployment 'm#1': `failover` belongs to the model entry",
        ),
        (
            "- {name: m, provider: openai, base_url: x, continue_final_mesage: true}",
            "models[0].continue_final_mesage: unknown setting (did you mean 'continue_final_message'?)",
        ),
        (
            "- {name: m, failover: true, deployments: [{provider: openai, base_url: x}, {provider: gemini, api_key: k}]}",
            "`failover.mid_stream` needs a deployment that can continue an answer",
        ),
    ],
)
def test_mistakes_say_what_to_fix(tmp_path: Path, models: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, models)
    assert words in str(info.value)
    assert "\n" not in str(info.value).strip()
