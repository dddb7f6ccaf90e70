"""The translation micro-benchmark runs on the recordings and counts what it translated."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import translation


def test_each_provider_bench_translates_its_recordings(shared_fixtures: Path) -> None:
    for name, bench in translation.BENCHES.items():
        figures = bench(2)
        assert figures.provider == name
        assert figures.canonical_events > 0 and figures.upstream_events > 0
        assert set(figures.us_per_event) == {"sse+json", "translate", "openai"}
        assert all(value > 0 for value in figures.us_per_event.values())
        assert "translation alone" in "\n".join(figures.lines())


def test_an_unknown_provider_is_refused() -> None:
    with pytest.raises(SystemExit):
        translation.main(["no-such-provider"])
