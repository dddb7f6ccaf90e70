"""Install LiteLLM proxy into a private virtualenv under ``bench/.cache/``.

LiteLLM is only a comparison target: it must never become a project dependency, and a
failed install must be reported as a failed target rather than crash the benchmark.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

CACHE_DIR = Path(__file__).resolve().parent / ".cache"
VENV_DIR = CACHE_DIR / "litellm-venv"
# Pinned so results are comparable across runs (newer releases pin proxy wheels that are not on
# PyPI); override with BENCH_LITELLM_SPEC.
DEFAULT_SPEC = "litellm[proxy]==1.106.12"
INSTALL_TIMEOUT_S = 20 * 60


class LiteLLMUnavailable(RuntimeError):
    """LiteLLM could not be installed; the message is the reason shown in the report."""


def litellm_spec() -> str:
    return os.environ.get("BENCH_LITELLM_SPEC", DEFAULT_SPEC)


def _marker() -> Path:
    return VENV_DIR / ".bench-installed"


def venv_python() -> Path:
    return VENV_DIR / "bin" / "python"


def litellm_executable() -> Path:
    return VENV_DIR / "bin" / "litellm"


def is_installed() -> bool:
    marker = _marker()
    return marker.exists() and marker.read_text().strip() == litellm_spec() and litellm_executable().exists()


def ensure_litellm(log_path: Path | None = None) -> Path:
    """Return the ``litellm`` executable, installing it first if needed (one-time, slow)."""
    if is_installed():
        return litellm_executable()
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    log_path = log_path or CACHE_DIR / "litellm-install.log"
    started = time.monotonic()
    with log_path.open("w") as log:
        try:
            if not venv_python().exists():
                subprocess.run(
                    [sys.executable, "-m", "venv", str(VENV_DIR)],
                    check=True,
                    stdout=log,
                    stderr=log,
                    timeout=300,
                )
            subprocess.run(
                [
                    str(venv_python()),
                    "-m",
                    "pip",
                    "install",
                    "--disable-pip-version-check",
                    "-q",
                    litellm_spec(),
                ],
                check=True,
                stdout=log,
                stderr=log,
                timeout=INSTALL_TIMEOUT_S,
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
            raise LiteLLMUnavailable(f"install of {litellm_spec()} failed ({exc}); see {log_path}") from exc
    if not litellm_executable().exists():
        raise LiteLLMUnavailable(f"{litellm_spec()} installed but no litellm executable; see {log_path}")
    _marker().write_text(litellm_spec())
    print(f"[bench] installed {litellm_spec()} in {time.monotonic() - started:.0f}s", file=sys.stderr)
    return litellm_executable()


if __name__ == "__main__":
    print(ensure_litellm())
