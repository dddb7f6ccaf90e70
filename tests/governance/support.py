"""A gateway process in front of the mock OpenAI upstream with a priced model, its admin key,
and helpers for keys and ledger rows through the admin API."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai

from tests.governance.conftest import Backend
from tests.support.openai_upstream import OpenAIUpstream
from tests.support.server import Gateway, start_gateway

HI = [{"role": "user", "content": "hi"}]
PRICED = "priced"  # $1 per completion token, prompt free: costs are whole dollars
FREE = "free"
DOLLAR_PER_TOKEN = 1_000_000.0


def gateway_config(upstream: OpenAIUpstream, backend: Backend, **governance: Any) -> dict[str, Any]:
    entry = {"provider": "openai", "base_url": upstream.base_url, "api_key": "x", "upstream_model": "gpt-4o-mini"}
    config: dict[str, Any] = {
        "models": [
            {"name": PRICED, **entry, "price": {"input": 0, "output": DOLLAR_PER_TOKEN}},
            {"name": FREE, **entry},
        ],
    }
    if governance:
        config["governance"] = governance
    return backend.config(config)


@dataclass
class GovGateway:
    gateway: Gateway
    admin_key: str

    @property
    def v1(self) -> str:
        return self.gateway.v1

    def admin(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.gateway.base_url, headers={"Authorization": f"Bearer {self.admin_key}"}, timeout=30
        )

    def new_key(self, **rules: Any) -> tuple[str, str]:
        """(id, secret) of a key made through the admin API."""
        with self.admin() as client:
            response = client.post("/admin/keys", json=rules)  # named key-N, each its own
        assert response.status_code == 201, response.text
        body = response.json()
        return body["id"], body["secret"]

    def key(self, key_id: str) -> dict[str, Any]:
        with self.admin() as client:
            response = client.get(f"/admin/keys/{key_id}")
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    def rows(self, key_id: str, count: int, timeout_s: float = 15) -> list[dict[str, Any]]:
        """The key's ledger rows once there are `count` of them (the ledger writes in batches)."""
        deadline = time.monotonic() + timeout_s
        with self.admin() as client:
            while True:
                rows: list[dict[str, Any]] = client.get(
                    "/admin/requests", params={"key_id": key_id, "limit": 1000}
                ).json()["data"]
                if len(rows) >= count or time.monotonic() > deadline:
                    return rows
                time.sleep(0.1)

    def concurrent_chats(self, secret: str, count: int, max_tokens: int, model: str = PRICED) -> list[object]:
        """`count` chat completions sent at once through the async SDK: answers or exceptions."""

        async def send() -> list[object]:
            sdk = openai.AsyncOpenAI(api_key=secret, base_url=self.v1, max_retries=0, timeout=60)
            calls = [
                sdk.chat.completions.create(model=model, messages=HI, max_tokens=max_tokens)  # type: ignore[arg-type]
                for _ in range(count)
            ]
            try:
                return list(await asyncio.gather(*calls, return_exceptions=True))
            finally:
                await sdk.close()

        return asyncio.run(send())

    def stop(self) -> None:
        self.gateway.stop()


def admin_key_of(gateway: Gateway) -> str:
    for line in gateway.log().splitlines():
        if "admin key: " in line:
            return line.split("admin key: ", 1)[1].strip()
    raise AssertionError(f"no admin key printed:\n{gateway.log()}")


def start(data_dir: Path, config: dict[str, Any], admin_key: str | None = None) -> GovGateway:
    gateway = start_gateway(data_dir, config)
    return GovGateway(gateway, admin_key or admin_key_of(gateway))
