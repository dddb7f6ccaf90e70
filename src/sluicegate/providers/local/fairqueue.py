"""The waiting line of the embedded model: first come, first served within a key, and
round-robin across keys, so one key's burst cannot starve the others."""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import Generic, TypeVar

T = TypeVar("T")


class FairQueue(Generic[T]):
    """Not thread-safe: its owner holds a lock."""

    def __init__(self) -> None:
        self._lines: OrderedDict[str, deque[T]] = OrderedDict()  # in turn order: next key first
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def push(self, key: str, item: T) -> None:
        line = self._lines.get(key)
        if line is None:
            line = self._lines[key] = deque()  # a new key waits for its turn after the others
        line.append(item)
        self._size += 1

    def pop(self) -> T:
        """The head of the next key's line; that key then goes to the back of the turn order."""
        key, line = next(iter(self._lines.items()))
        item = line.popleft()
        self._size -= 1
        del self._lines[key]
        if line:
            self._lines[key] = line
        return item

    def drain(self) -> list[T]:
        items = [item for line in self._lines.values() for item in line]
        self._lines.clear()
        self._size = 0
        return items
