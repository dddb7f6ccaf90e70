"""The two shapes of a model entry in the YAML, and config errors an operator can read."""

from __future__ import annotations

from pathlib import Path

import pytest

from sluicegate.gateway import shared_cooldowns
from sluicegate.providers.openai.config import OpenAIConfig
from sluicegate.settings import ConfigError, load_settings
from sluicegate.wiring.build import build_router
from sluicegate.wiring.entry import DeploymentsEntry

YAML = """
models:
  - name: gpt-4o
    routing: least-busy
    retries: 2
    fallbacks: [llama]
    cooldown: {failures: 5, seconds: 60}
    timeouts: {connect: 3, first_byte: 20, idle: 15, total: 120}
    deployments:
      - provider: openai
        base_url: http://127.0.0.1:1/v1/
        api_key: a
        weight: 3
      - name: azure-east
        provider: openai
        base_url: http://127.0.0.1:2/v1
        upstream_model: gpt-4o-2024-08-06
        read_timeout_s: 99
  - name: llama
    provider: openai
    base_url: http://127.0.0.1:3/v1
    aliases: [llama3]
    cooldown: false
"""


def load(tmp_path: Path, text: str) -> object:
    path = tmp_path / "sluicegate.yaml"
    path.write_text(text)
    return load_settings(path, data_dir=tmp_path)


def test_a_model_with_deployments(tmp_path: Path) -> None:
    settings = load(tmp_path, YAML)
    entry, single = settings.models  # type: ignore[attr-defined]
    assert isinstance(entry, DeploymentsEntry) and isinstance(single, OpenAIConfig)
    first, second = entry.deployments
    assert (first.name, first.weight, first.upstream_model, first.base_url) == (
        "gpt-4o#1",
        3,
        "gpt-4o",  # asks its upstream for the model's own name
        "http://127.0.0.1:1/v1",
    )
    assert (second.name, second.weight, second.upstream_model) == ("azure-east", 1, "gpt-4o-2024-08-06")
    assert entry.retries.count == 2 and entry.fallbacks == ["llama"] and entry.provider == "openai"
    assert not single.cooldown.enabled and single.cooldown.failures == 3


def test_model_timeouts_reach_each_deployment_unless_it_sets_its_own(tmp_path: Path) -> None:
    entry = load(tmp_path, YAML).models[0]  # type: ignore[attr-defined]
    router = build_router(entry)
    one, two = (deployment.provider.config for deployment in router.deployments)  # type: ignore[attr-defined]
    assert (one.connect_timeout_s, one.first_byte_timeout_s, one.read_timeout_s, one.timeout_s) == (
        3,
        20,
        15,
        120,
    )
    assert two.read_timeout_s == 99  # its own
    assert (router.strategy, router.timeouts.total, router.kind) == ("least-busy", 120, "openai")


@pytest.mark.parametrize(
    ("models", "words"),
    [
        (
            "- {name: m, provider: opneai, base_url: x}",
            "line 2: models[0].provider: unknown provider 'opneai' (did you mean 'openai'?); use one of 'local',",
        ),
        ("- name: m\n    provider: anthropc", "line 3: models[0].provider: unknown provider 'anthropc' (did you mean"),
        ("- {name: m, provider: 3}", "models[0].provider: unknown provider '3'; use one of 'local', 'openai',"),
        (
            "- {name: m, base_url: x}",
            "models[0]: says no `provider:` (one of 'local', 'openai', 'anthropic', 'gemini', 'embedded') or a list of `deployments:`",
        ),
        (
            "- {name: m, deployments: [{provider: gemni}]}",
            "models[0].deployments[0].provider: unknown provider 'gemni' (did you mean 'gemini'?)",
        ),
        ("- {name: m, deployments: [{provider: openai}]}", "models[0].deployments[0].base_url: is required"),
        ("- {name: m, deployments: [{base_url: x}]}", "models[0].deployments[0]: says no `provider:`"),
        ("- {name: m, deployments: []}", "models[0].deployments: List should have at least 1 item"),
        (
            "- {name: m, weight: 2, deployments: [{provider: local}]}",
            "`weight` belongs to each of the deployments",
        ),
        (
            "- {name: m, deployments: [{provider: local, fallbacks: [x]}]}",
            "deployment 'm#1': `fallbacks` belongs to the model entry",
        ),
        (
            "- {name: m, deployments: [{name: a, provider: local}, {name: a, provider: local}]}",
            "deployment name 'a' is used twice",
        ),
        ("- {name: m, provider: local, fallbacks: [nope]}", "fallback 'nope' is not a configured model"),
        ("- {name: m, provider: local, fallbacks: [m]}", "cannot be its own fallback"),
        ("- {name: m, provider: local, routing: ordered}", "models[0].routing: unknown setting"),
        ("- {name: m, provider: local, retries: {count: 99}}", "models[0].retries.count"),
        ("- {name: m, provider: local, timeouts: {idle: 0}}", "models[0].timeouts.idle"),
        # a misspelled setting is compared with those allowed where it stands
        (
            "- {name: m, provider: openai, base_ulr: x}",
            "models[0].base_ulr: unknown setting (did you mean 'base_url'?)",
        ),
        (
            "- {name: m, provder: openai, base_url: x}",
            "models[0]: says no `provider:` (`provder:` is not a setting: did you mean `provider:`?)",
        ),
        (
            "- {name: m, deployments: [{provider: anthropic, base_url: x, api_kye: k}]}",
            "models[0].deployments[0].api_kye: unknown setting (did you mean 'api_key'?)",
        ),
        ("- {name: m, provider: local, retries: {cuont: 2}}", "models[0].retries.cuont: unknown setting (did you mean 'count'?)"),
        ("- {name: m, provider: local, zzzzz: 2}", "models[0].zzzzz: unknown setting (remove it or check its spelling"),
    ],
)
def test_config_errors_say_where_and_why(tmp_path: Path, models: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, "models:\n  " + models + "\n")
    assert words in str(info.value)


def test_a_deployments_mistake_names_its_line(tmp_path: Path) -> None:
    text = "models:\n  - name: m\n    deployments:\n      - {provider: openai, base_url: x}\n      - provider: openai\n        api_key: k\n"
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    assert str(info.value).endswith("line 5: models[0].deployments[1].base_url: is required but missing")


def test_a_misspelled_top_level_setting_is_named_with_the_right_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, "server: {prot: 9000}\n")
    assert "server.prot: unknown setting (did you mean 'port'?)" in str(info.value)


def test_a_redis_for_shared_cooldowns(tmp_path: Path) -> None:
    settings = load(tmp_path, "redis: {url: 'redis://127.0.0.1:6379/0'}\n")
    assert settings.redis.url == "redis://127.0.0.1:6379/0" and settings.redis.prefix == "sluicegate:"  # type: ignore[attr-defined]
    assert shared_cooldowns(settings) is not None  # type: ignore[arg-type]
    assert shared_cooldowns(load(tmp_path, "{}\n")) is None  # type: ignore[arg-type]
