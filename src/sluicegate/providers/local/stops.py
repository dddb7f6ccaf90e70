"""Stop sequences over a token stream: emit text as soon as it cannot start a stop string."""

from __future__ import annotations


class StopMatcher:
    __slots__ = ("_held", "_stops", "matched")

    def __init__(self, stops: list[str]) -> None:
        self._stops = [stop for stop in stops if stop]
        self._held = ""
        self.matched: str | None = None  # the stop sequence that ended the text

    def feed(self, text: str) -> tuple[str, bool]:
        """Returns the text safe to emit now, and whether a stop sequence was reached."""
        if not self._stops:
            return text, False
        buffer = self._held + text
        found = [(at, stop) for stop in self._stops if (at := buffer.find(stop)) != -1]
        if found:
            cut, self.matched = min(found, key=lambda hit: hit[0])
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
