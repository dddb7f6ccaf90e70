"""Stop sequences over a token stream: emit text as soon as it cannot start a stop string."""

from __future__ import annotations


class StopMatcher:
    __slots__ = ("_held", "_stops")

    def __init__(self, stops: list[str]) -> None:
        self._stops = [stop for stop in stops if stop]
        self._held = ""

    def feed(self, text: str) -> tuple[str, bool]:
        """Returns the text safe to emit now, and whether a stop sequence was reached."""
        if not self._stops:
            return text, False
        buffer = self._held + text
        cut = min((i for i in (buffer.find(stop) for stop in self._stops) if i != -1), default=-1)
        if cut != -1:
            self._held = ""
            return buffer[:cut], True
        keep = 0
        for stop in self._stops:
            for size in range(min(len(stop) - 1, len(buffer)), keep, -1):
                if buffer.endswith(stop[:size]):
                    keep = size
                    break
        self._held = buffer[len(buffer) - keep :] if keep else ""
        return buffer[: len(buffer) - keep], False

    def flush(self) -> str:
        held, self._held = self._held, ""
        return held
