"""`GET /v1/models` and `/v1/models/{id}` for Anthropic's clients: the `anthropic` SDK's
`client.models.list()` / `retrieve()` get Anthropic's shape (with its paging and errors),
OpenAI's clients OpenAI's, and both only the models the key may use."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import httpx
import openai
import pytest

from tests.governance.support import GovGateway, start
from tests.support.openai_upstream import OpenAIUpstream

NAMES = ["model-a", "model-b", "model-c", "model-d"]


@pytest.fixture(scope="module")
def gov(tmp_path_factory: pytest.TempPathFactory, upstream: OpenAIUpstream) -> Iterator[GovGateway]:
    entry = {"provider": "openai", "base_url": upstream.base_url, "api_key": "x"}
    config = {"models": [{"name": name, **entry} for name in NAMES[:3]] + [{"name": "model-d", "aliases": ["d-alias"], **entry}]}
    server = start(tmp_path_factory.mktemp("anthropic-models"), config)
    yield server
    server.stop()


def sdk(gov: GovGateway, secret: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gov.gateway.base_url, api_key=secret, max_retries=0, timeout=30)


def test_the_anthropic_sdk_lists_and_retrieves_in_anthropics_shape(gov: GovGateway) -> None:
    _, secret = gov.new_key()
    client = sdk(gov, secret)
    models = list(client.models.list())  # the SDK pages through has_more / last_id itself
    assert [m.id for m in models] == [*NAMES, "d-alias"]
    assert all(m.type == "model" and m.display_name == m.id for m in models)
    assert all(m.created_at.tzinfo is not None for m in models)
    one = client.models.retrieve("model-b")
    assert (one.id, one.type) == ("model-b", "model")


def test_paging_as_anthropic_pages(gov: GovGateway) -> None:
    _, secret = gov.new_key()
    headers = {"x-api-key": secret, "anthropic-version": "2023-06-01"}
    first = httpx.get(gov.v1 + "/models", params={"limit": 2}, headers=headers).json()
    assert [m["id"] for m in first["data"]] == ["model-a", "model-b"]
    assert (first["has_more"], first["first_id"], first["last_id"]) == (True, "model-a", "model-b")
    rest = httpx.get(gov.v1 + "/models", params={"limit": 10, "after_id": "model-b"}, headers=headers).json()
    assert [m["id"] for m in rest["data"]] == ["model-c", "model-d", "d-alias"] and rest["has_more"] is False
    before = httpx.get(gov.v1 + "/models", params={"before_id": "model-c", "limit": 1}, headers=headers).json()
    assert [m["id"] for m in before["data"]] == ["model-b"] and before["has_more"] is True
    bad = httpx.get(gov.v1 + "/models", params={"limit": 0}, headers=headers)
    assert bad.status_code == 400 and bad.json()["type"] == "error"
    assert bad.json()["error"]["type"] == "invalid_request_error"


def test_errors_are_anthropics(gov: GovGateway) -> None:
    client = sdk(gov, "sk-not-a-key")
    with pytest.raises(anthropic.AuthenticationError):
        client.models.list()
    _, secret = gov.new_key()
    with pytest.raises(anthropic.NotFoundError) as missing:
        sdk(gov, secret).models.retrieve("no-such-model")
    assert missing.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]


def test_only_the_models_the_key_may_use(gov: GovGateway) -> None:
    _, secret = gov.new_key(models=["model-a", "model-c"])
    assert [m.id for m in sdk(gov, secret).models.list()] == ["model-a", "model-c"]
    with pytest.raises(anthropic.NotFoundError):
        sdk(gov, secret).models.retrieve("model-b")
    oai = openai.OpenAI(base_url=gov.v1, api_key=secret, max_retries=0)
    assert [m.id for m in oai.models.list()] == ["model-a", "model-c"]
    with pytest.raises(openai.NotFoundError):
        oai.models.retrieve("model-b")


def test_openai_clients_keep_openais_shape(gov: GovGateway) -> None:
    _, secret = gov.new_key()
    listed = httpx.get(gov.v1 + "/models", headers={"Authorization": f"Bearer {secret}"}).json()
    assert listed["object"] == "list"
    assert listed["data"][0] == {
        "id": "model-a", "object": "model", "created": listed["data"][0]["created"],
        "owned_by": "openai-compatible", "mode": "chat",
    }
    alias = next(m for m in listed["data"] if m["id"] == "d-alias")
    assert alias["alias_for"] == "model-d"
