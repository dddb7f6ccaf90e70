"""The embedded model's thread counts reach llama.cpp: those a model entry sets, else the
machine's default (`machine_threads`), for generation and for prompts alike."""

from __future__ import annotations

import os

import pytest

from sluicegate.providers.local.config import LocalConfig
from sluicegate.providers.local.model import LocalModel, bundled_model_path, machine_threads
from sluicegate.providers.local.provider import LocalProvider
from tests.support.server import LOCAL_MODEL


def test_the_default_is_every_cpu_the_process_may_use() -> None:
    assert machine_threads() == len(os.sched_getaffinity(0))


def test_unset_thread_counts_are_the_machines() -> None:
    model = LocalModel(bundled_model_path(), n_ctx=256, n_threads=None)
    try:
        assert model.engine.threads() == (machine_threads(), machine_threads())
    finally:
        model.engine.stop()
        model.engine.run()  # frees the context


@pytest.mark.parametrize(("threads", "batch"), [(1, 2), (3, None)])
async def test_a_model_entrys_thread_counts_reach_llama_cpp(threads: int, batch: int | None) -> None:
    config = LocalConfig(name=LOCAL_MODEL, provider="local", n_ctx=256, n_threads=threads, n_threads_batch=batch)
    provider = LocalProvider(config)
    await provider.start()
    try:
        assert provider._model is not None
        assert provider._model.engine.threads() == (threads, batch or threads)  # batch: n_threads when unset
    finally:
        await provider.close()
