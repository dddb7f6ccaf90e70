"""The app in this process, behind httpx's ASGI transport, with its lifespan run: for logic
tests that need no real server (request ids, metrics, traces)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette

from sluicegate.app import create_app
from sluicegate.gateway import Gateway
from sluicegate.settings import Settings


@dataclass
class InProcess:
    app: Starlette
    client: httpx.AsyncClient
    api_key: str

    @property
    def gateway(self) -> Gateway:
        gateway: Gateway = self.app.state.gateway
        return gateway

    def auth(self, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}", **extra}


def settings_for(data_dir: Path, models: list[dict[str, Any]], **server: Any) -> Settings:
    return Settings.model_validate({"data_dir": str(data_dir), "models": models, "server": server})


@asynccontextmanager
async def in_process(settings: Settings, gateway: Gateway | None = None) -> AsyncIterator[InProcess]:
    app = create_app(settings, gateway)
    gw: Gateway = app.state.gateway
    await gw.start()
    _, secret = await gw.keys.create("tests")
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway", timeout=30) as client:
            yield InProcess(app, client, secret)
    finally:
        await gw.close()
