"""Counts a traced server's writes to its TCP sockets from a plain `strace -f` trace.

Which descriptor is a TCP socket is followed through the trace itself (the sockets it opens and
accepts, their copies, their closes, and the descriptor tables that threads share and forks
copy) rather than read from strace's `-yy` annotations: those come from /proc and the kernel's
socket-diagnostics netlink at trace time, and a sandbox that hides either leaves every write
unnamed, so the count reads zero instead of failing.
"""

from __future__ import annotations

import re

WRITES = ("write", "writev", "sendto", "sendmsg")
SYSCALLS = (*WRITES, "socket", "accept", "accept4", "dup", "dup2", "dup3", "fcntl", "close",
            "clone", "clone3", "fork", "vfork")  # fmt: skip
"""What the trace must hold (`strace -e trace=...`) for the count to follow every descriptor."""

LINE = re.compile(r"(\d+)\s+(.*)")
RESUMED = re.compile(r"<\.\.\. (\w+) resumed>\s?(.*)")
CALL = re.compile(r"(\w+)\((.*)\)\s+=\s+(-?\d+|\?)(?: .*)?")
UNFINISHED = " <unfinished ...>"
INET_STREAM = re.compile(r"AF_INET6?, SOCK_STREAM\b")


class SocketWrites:
    """Reads a trace line by line; `total` is the write calls made to TCP sockets so far."""

    def __init__(self) -> None:
        self.total = 0
        self._tables: dict[int, set[int]] = {}  # thread id -> the TCP sockets of its descriptor table
        self._pending: dict[int, str] = {}  # thread id -> the start of its unfinished call

    def feed(self, line: str) -> None:
        found = LINE.fullmatch(line.strip())
        if found is None:
            return
        tid, text = int(found[1]), found[2]
        if text.endswith(UNFINISHED):
            self._pending[tid] = text.removesuffix(UNFINISHED)
            return
        if resumed := RESUMED.fullmatch(text):
            text = self._pending.pop(tid, resumed[1] + "(") + resumed[2]
        call = CALL.fullmatch(text)
        if call is not None:
            self._call(tid, call[1], call[2], call[3])

    def _call(self, tid: int, name: str, args: str, result: str) -> None:
        table = self._tables.setdefault(tid, set())
        fd = _first_int(args)
        made = int(result) if result != "?" else -1
        if name in WRITES:
            self.total += fd in table
        elif made >= 0 and _opens_tcp(name, args, fd in table):
            table.add(made)
        elif name in ("dup", "dup2", "dup3") or (name == "fcntl" and "F_DUPFD" in args):
            if made >= 0:
                table.discard(made)
                if fd in table:
                    table.add(made)
        elif name == "close":
            table.discard(fd)
        elif name in ("clone", "clone3", "fork", "vfork") and made > 0:
            self._spawned(tid, made, shares="CLONE_FILES" in args)

    def _spawned(self, parent: int, child: int, shares: bool) -> None:
        """A thread shares its parent's table, a process starts with a copy; the child's own
        lines may come before its parent's clone returns, so what it already opened is kept."""
        table = self._tables[parent] if shares else set(self._tables[parent])
        table |= self._tables.get(child, set())
        self._tables[child] = table


def _opens_tcp(name: str, args: str, from_tcp: bool) -> bool:
    """A TCP socket of IPv4 or IPv6, or a connection accepted on one."""
    if name == "socket":
        return INET_STREAM.match(args) is not None
    return name in ("accept", "accept4") and from_tcp


def _first_int(args: str) -> int:
    head = args.split(",", 1)[0].strip()
    return int(head) if head.lstrip("-").isdigit() else -1


def tcp_writes(trace: str) -> int:
    """The write calls to TCP sockets in a whole `strace -f` trace."""
    counter = SocketWrites()
    for line in trace.splitlines():
        counter.feed(line)
    return counter.total
