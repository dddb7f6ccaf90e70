"""The running gateway's parts, built once per process and shared by every request."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from sluicegate.governance.keys import KeyStore
from sluicegate.providers.registry import ModelRegistry
from sluicegate.settings import Settings
from sluicegate.store.sqlite import SQLiteStore


@dataclass
class Gateway:
    settings: Settings
    store: SQLiteStore
    keys: KeyStore
    models: ModelRegistry
    started_at: int = field(default_factory=lambda: int(time.time()))

    @classmethod
    def build(cls, settings: Settings) -> Gateway:
        store = SQLiteStore.in_data_dir(settings.data_dir)
        return cls(
            settings=settings,
            store=store,
            keys=KeyStore(store, settings.server.key_cache_seconds),
            models=ModelRegistry.from_configs(settings.models),
        )

    async def start(self) -> None:
        for provider in self.models.providers():
            await provider.start()

    async def close(self) -> None:
        for provider in self.models.providers():
            await provider.close()
        self.store.close()
