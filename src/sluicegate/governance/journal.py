"""The in-flight journal: each admitted request's open record, appended to a file of this
process's before its upstream call, for the price of one `write` (a few microseconds) where a
database transaction per request cost a hundred times more on the request path.

An append lives in the kernel's page cache the moment `write` returns, so a crashed process
(kill -9, OOM, a segfault) loses none of it; each heartbeat `fdatasync`s the files, so a crashed
machine loses at most a heartbeat's admissions. The lines, one request each:

    H {"host": ..., "pid": ..., "start": ...}   the owner (first line)
    O [record]                                   admitted (the record as far as known)
    P [record]                                   the same request's progress (tokens so far)
    C id id ...                                  closed: their ledger records are committed

A record is a JSON array of `store.records.OPEN_FIELDS` (an object, by field name, before
2026-12-08; both are read).

A file's requests are its O lines without a C; a reaper reads the files of dead processes
(governance/durable.py) and bills those as interrupted, skipping any request the ledger already
has, so a file read twice, or a request also kept in the database, is never billed twice. Files
rotate at `ROTATE_BYTES`; a file whose requests are all closed is deleted.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from sluicegate.store.records import open_fields

log = logging.getLogger("sluicegate.governance")
ROTATE_BYTES = 4 << 20
SUFFIX = ".journal"


@dataclass(slots=True)
class _File:
    path: Path
    fd: int
    size: int = 0
    open: set[str] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class Owner:
    host: str
    pid: int
    start: str


class Journal:
    """This process's journal files in `folder`; every method is a plain call on the loop."""

    def __init__(self, folder: Path, owner: Owner) -> None:
        self.folder = folder
        self.owner = owner
        self._token = secrets.token_hex(4)
        self._seq = 0
        self._files: list[_File] = []
        self._where: dict[str, _File] = {}  # open id -> the file holding its O line
        folder.mkdir(parents=True, exist_ok=True)
        self._current = self._new_file()

    def _new_file(self) -> _File:
        self._seq += 1
        name = f"{self.owner.pid}-{self._token}-{self._seq}{SUFFIX}"
        path = self.folder / name
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o600)
        journal_file = _File(path, fd)
        self._files.append(journal_file)
        self._append(journal_file, self._header())
        return journal_file

    def _header(self) -> bytes:
        owner = {"host": self.owner.host, "pid": self.owner.pid, "start": self.owner.start}
        return b"H " + orjson.dumps(owner) + b"\n"

    def _rotate(self) -> None:
        """A full file with requests still open is kept until they close; one with none starts
        over in place."""
        if self._current.open:
            self._current = self._new_file()
            return
        os.ftruncate(self._current.fd, 0)
        self._current.size = 0
        self._append(self._current, self._header())

    @staticmethod
    def _append(journal_file: _File, data: bytes) -> None:
        written = os.write(journal_file.fd, data)
        if written != len(data):  # a regular file takes the whole of a small append, or raises (ENOSPC)
            raise OSError(f"short write to {journal_file.path}: {written} of {len(data)} bytes")
        journal_file.size += written

    def open(self, open_id: str, blob: bytes) -> None:
        if self._current.size >= ROTATE_BYTES:
            self._rotate()
        self._append(self._current, b"O " + blob + b"\n")
        self._current.open.add(open_id)
        self._where[open_id] = self._current

    def progress(self, rows: Iterable[tuple[str, bytes]]) -> None:
        for open_id, blob in rows:
            journal_file = self._where.get(open_id)
            if journal_file is not None:
                self._append(journal_file, b"P " + blob + b"\n")

    def close(self, open_ids: Iterable[str]) -> None:
        """Their records are committed: one C line per file, and a file left with nothing open
        (and no longer written to) is deleted."""
        by_file: dict[int, tuple[_File, list[str]]] = {}
        for open_id in open_ids:
            journal_file = self._where.pop(open_id, None)
            if journal_file is None:
                continue
            entry = by_file.get(journal_file.fd)
            if entry is None:  # not setdefault: its default would be built for every id
                entry = by_file[journal_file.fd] = (journal_file, [])
            entry[1].append(open_id)
        for journal_file, ids in by_file.values():
            self._append(journal_file, b"C " + " ".join(ids).encode() + b"\n")
            journal_file.open.difference_update(ids)
            if not journal_file.open and journal_file is not self._current:
                self._drop(journal_file)

    def _drop(self, journal_file: _File) -> None:
        os.close(journal_file.fd)
        with contextlib.suppress(FileNotFoundError):
            journal_file.path.unlink()
        self._files.remove(journal_file)

    @property
    def files(self) -> list[_File]:
        return list(self._files)

    @property
    def open_count(self) -> int:
        return len(self._where)

    def sync(self) -> None:
        """Each heartbeat (on a thread: it waits for the disk): the files to disk, and their
        times renewed, which tell reapers on other hosts that the owner lives."""
        now = time.time()
        for journal_file in list(self._files):
            with contextlib.suppress(OSError):
                os.fdatasync(journal_file.fd)
                os.utime(journal_file.fd, (now, now))

    def shut(self) -> int:
        """At a clean stop, after the ledger's last flush: the files go unless requests are
        still open in them (left for a reaper); how many are left open."""
        left = len(self._where)
        for journal_file in list(self._files):
            if journal_file.open:
                os.close(journal_file.fd)
                self._files.remove(journal_file)
            else:
                self._drop(journal_file)
        return left


def owner_of(path: Path) -> Owner | None:
    """The owner named by a journal file's first line (None if it has none yet)."""
    try:
        with path.open("rb") as handle:
            first = handle.readline()
    except OSError:
        return None
    if not first.startswith(b"H ") or not first.endswith(b"\n"):
        return None
    try:
        fields = orjson.loads(first[2:])
        return Owner(str(fields["host"]), int(fields["pid"]), str(fields["start"]))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


def open_records(path: Path) -> dict[str, bytes]:
    """The requests a journal file leaves open: open id -> its last record (a torn last line,
    cut by the crash, is skipped)."""
    records: dict[str, bytes] = {}
    try:
        data = path.read_bytes()
    except OSError:
        return records
    for line in data.split(b"\n")[:-1]:  # the part after the last newline is torn
        kind, _, rest = line.partition(b" ")
        if kind in (b"O", b"P"):
            try:
                open_id = open_fields(rest).get("open_id")
            except ValueError:  # orjson.JSONDecodeError is one: a line cut by the crash
                continue
            if isinstance(open_id, str) and (kind == b"O" or open_id in records):
                records[open_id] = rest
        elif kind == b"C":
            for open_id in rest.decode(errors="replace").split():
                records.pop(open_id, None)
    return records


def journal_files(folder: Path) -> list[Path]:
    try:
        return sorted(path for path in folder.iterdir() if path.name.endswith(SUFFIX))
    except OSError:
        return []
