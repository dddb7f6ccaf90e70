"""Whether llama.cpp may use its AMX kernels on this machine.

Some virtual machines report AMX in cpuid while the hypervisor has not enabled its register
state. llama.cpp built for the host (`-march=native`, what `pip install` compiles) then dies with
SIGILL at the first prompt long enough for its AMX matrix multiply: the gateway would vanish
mid-answer. On a CPU that reports AMX, a child process tries that multiply once; if it dies, the
model is loaded without llama.cpp's extra buffer types (AMX, and the weight repacking some
quantisations use), and the log says so in one line.
"""

from __future__ import annotations

import functools
import logging
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger("sluicegate.local")

# A prompt of 64 tokens: enough rows for llama.cpp to take its AMX path.
_PROBE = """
import sys
from llama_cpp import Llama
model = Llama(model_path=sys.argv[1], n_ctx=256, verbose=False)
model.eval(model.tokenize(b" the quick brown fox jumps over the lazy dog" * 7)[:64])
"""
_PROBE_TIMEOUT_S = 120.0


def cpu_reports_amx(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    try:
        text = cpuinfo.read_text()
    except OSError:
        return False  # not Linux: llama.cpp asks the OS itself there
    for line in text.splitlines():
        if line.startswith("flags"):
            return "amx_tile" in line.split()
    return False


@functools.cache
def extra_buffers_usable(model_path: str) -> bool:
    """False when this CPU reports AMX and a child process using it dies (once per process)."""
    if not cpu_reports_amx():
        return True
    try:
        probe = subprocess.run(
            [sys.executable, "-c", _PROBE, model_path], capture_output=True, timeout=_PROBE_TIMEOUT_S
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("could not check whether llama.cpp's AMX kernels run here (%s); assuming they do", exc)
        return True
    if probe.returncode == 0:
        return True
    how = "SIGILL" if probe.returncode == -signal.SIGILL else f"exit status {probe.returncode}"
    log.warning(
        "this CPU reports AMX, but llama.cpp's AMX kernels fail here (%s; a virtual machine without"
        " AMX state?): the embedded model runs without them",
        how,
    )
    return False


_loading = threading.Lock()


@contextmanager
def without_extra_buffers() -> Iterator[None]:
    """While a `Llama` is built inside: its model loads with `use_extra_bufts` off. The
    `Llama` constructor has no argument for it, so its default parameters are wrapped."""
    import llama_cpp.llama_cpp as native

    with _loading:
        defaults = native.llama_model_default_params

        def plain_buffers() -> object:
            params = defaults()
            params.use_extra_bufts = False
            return params

        native.llama_model_default_params = plain_buffers
        try:
            yield
        finally:
            native.llama_model_default_params = defaults
