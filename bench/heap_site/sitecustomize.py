"""For ``python -m bench.heap``: with SG_TRACE set, tracemalloc runs from the start and each SIGUSR1
writes a heap snapshot (snap1.bin, snap2.bin...) into that folder."""

from __future__ import annotations

import os

if os.environ.get("SG_TRACE"):
    import signal
    import tracemalloc
    from typing import Any

    tracemalloc.start(1)
    _taken = [0]

    def _dump(*_: Any) -> None:
        _taken[0] += 1
        tracemalloc.take_snapshot().dump(os.path.join(os.environ["SG_TRACE"], f"snap{_taken[0]}.bin"))

    signal.signal(signal.SIGUSR1, _dump)
