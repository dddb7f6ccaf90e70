"""A CPU that reports AMX but cannot run it (some virtual machines) gets the embedded model
without llama.cpp's AMX kernels, found by a child process that dies, not by the gateway dying."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from sluicegate.providers.local import amx
from sluicegate.providers.local.model import bundled_model_path


@pytest.fixture(autouse=True)
def fresh_verdict() -> Iterator[None]:
    amx.extra_buffers_usable.cache_clear()
    yield
    amx.extra_buffers_usable.cache_clear()


def test_the_amx_flag_is_read_from_the_cpu_flags(tmp_path: Path) -> None:
    with_amx = tmp_path / "with"
    with_amx.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 amx_bf16 amx_tile amx_int8\n")
    without = tmp_path / "without"
    without.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f\nbugs\t\t: amx_tile_is_not_a_flag_here\n")
    assert amx.cpu_reports_amx(with_amx)
    assert not amx.cpu_reports_amx(without)
    assert not amx.cpu_reports_amx(tmp_path / "absent")


def test_a_cpu_without_amx_is_not_probed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(amx, "cpu_reports_amx", lambda: False)
    monkeypatch.setattr(amx, "_PROBE", "raise SystemExit(3)")  # would say 'unusable' if it ran
    assert amx.extra_buffers_usable(str(bundled_model_path()))


def test_a_probe_dying_of_sigill_turns_the_extra_buffers_off(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(amx, "cpu_reports_amx", lambda: True)
    monkeypatch.setattr(amx, "_PROBE", "import os, signal; os.kill(os.getpid(), signal.SIGILL)")
    with caplog.at_level(logging.WARNING, logger="sluicegate.local"):
        assert not amx.extra_buffers_usable(str(bundled_model_path()))
    assert "SIGILL" in caplog.text and "runs without them" in caplog.text


def test_a_probe_that_runs_keeps_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(amx, "cpu_reports_amx", lambda: True)
    monkeypatch.setattr(amx, "_PROBE", "import sys; assert sys.argv[1].endswith('.gguf')")
    assert amx.extra_buffers_usable(str(bundled_model_path()))


def test_the_model_loads_without_extra_buffers_only_inside_the_block() -> None:
    from llama_cpp import Llama

    path = str(bundled_model_path())
    with amx.without_extra_buffers():
        inside = Llama(model_path=path, n_ctx=64, verbose=False, vocab_only=True)
    after = Llama(model_path=path, n_ctx=64, verbose=False, vocab_only=True)
    assert inside.model_params.use_extra_bufts is False
    assert after.model_params.use_extra_bufts is True


def test_this_machines_verdict_lets_a_long_prompt_through() -> None:
    """Whatever this CPU is, the model as the gateway loads it evaluates a 64-token prompt
    (the size at which llama.cpp takes its AMX path) without killing the process."""
    from sluicegate.providers.local.model import LocalModel

    model = LocalModel(bundled_model_path(), n_ctx=256, n_threads=None)
    tokens = model.llama.tokenize(b" the quick brown fox jumps over the lazy dog" * 7)[:64]
    model.llama.eval(tokens)
    assert len(tokens) >= 60 and model.llama.n_tokens == len(tokens)
