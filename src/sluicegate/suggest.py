"""The "did you mean" for a model name no entry serves.

A name that begins, ends or sits inside a configured model's name (`smollm2` for
`smollm2-135m-instruct`) is offered that model; otherwise the closest spelling. Real model
names come before aliases: an alias is offered only for a near-miss of its own spelling
(`gpt-4o-mnii`), not because two unrelated names share a prefix (`gpt-5` is not `gpt-4o`, an
alias that may stand for a very different model).
"""

from __future__ import annotations

import difflib
from collections.abc import Collection

MODEL_CUTOFF = 0.6
ALIAS_CUTOFF = 0.8


def suggest_model(asked: str, models: Collection[str], aliases: Collection[str]) -> str | None:
    wanted = asked.strip().lower()
    if not wanted:
        return None
    real = [name for name in models if not name.endswith("/*")]
    containing = [name for name in real if wanted in name.lower() or name.lower() in wanted]
    if containing:
        return min(containing, key=lambda name: (not name.lower().startswith(wanted), len(name)))
    close = difflib.get_close_matches(asked, real, n=1, cutoff=MODEL_CUTOFF)
    if close:
        return close[0]
    close = difflib.get_close_matches(asked, list(aliases), n=1, cutoff=ALIAS_CUTOFF)
    return close[0] if close else None
