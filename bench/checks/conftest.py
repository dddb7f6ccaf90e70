"""The benchmark's own checks (`python -m bench.check`): its load generators, servers, counters
and reports, apart from the product's unit suite."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import translation


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "tools: drives wrk, valgrind, strace or node (installed by `python -m bench.check`)"
    )


@pytest.fixture
def shared_fixtures() -> Path:
    """Recorded real streams (`../shared/fixtures`, beside the repository)."""
    assert translation.FIXTURES.is_dir(), f"{translation.FIXTURES} is missing"
    return translation.FIXTURES
