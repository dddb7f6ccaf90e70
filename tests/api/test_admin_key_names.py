"""The admin API takes a key by its name where the CLI does (`POST /admin/keys/bob/revoke`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.inprocess import InProcess, in_process, settings_for
from tests.support.openai_upstream import OpenAIUpstream


@pytest.fixture
async def gw(tmp_path: Path, clean_upstream: OpenAIUpstream) -> AsyncIterator[InProcess]:
    settings = settings_for(
        tmp_path, [{"name": "up", "provider": "openai", "base_url": clean_upstream.base_url}]
    )
    async with in_process(settings) as running:
        yield running


async def test_a_key_is_found_by_its_name_as_by_its_id(gw: InProcess) -> None:
    _, admin = await gw.gateway.keys.create("root", admin=True)
    bob, _ = await gw.gateway.keys.create("bob")
    headers = {"Authorization": f"Bearer {admin}"}
    got = await gw.client.get("/admin/keys/bob", headers=headers)
    assert got.status_code == 200 and got.json()["id"] == bob.id
    patched = await gw.client.patch("/admin/keys/bob", json={"rpm": 5}, headers=headers)
    assert patched.status_code == 200 and patched.json()["rpm"] == 5
    revoked = await gw.client.post("/admin/keys/bob/revoke", headers=headers)
    assert revoked.status_code == 200
    assert revoked.json()["id"] == bob.id and revoked.json()["status"] == "revoked"
    missing = await gw.client.post("/admin/keys/nobody/revoke", headers=headers)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "key_not_found"


async def test_a_name_two_keys_share_asks_for_the_id(gw: InProcess) -> None:
    _, admin = await gw.gateway.keys.create("root", admin=True)
    await gw.gateway.keys.create("twin")
    await gw.gateway.keys.create("twin")
    response = await gw.client.post("/admin/keys/twin/revoke", headers={"Authorization": f"Bearer {admin}"})
    assert response.status_code == 400 and response.json()["error"]["code"] == "key_name_ambiguous"
