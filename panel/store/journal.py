"""The run journal `<db>.journal.jsonl`: a run's writes land here first, durably, then fold into DuckDB.

DuckDB refuses a read-write open while any other process reads the file, so a long `panel sql` query
would otherwise make a run wait and then drop answers it paid for. Instead every write of a run (its
record, its chair items, each batch of answers with their attempts, its status) is appended as one JSON
line and fsync'd before the database is tried. The next read-write transaction on the database, from
this process or any later panel command, folds every pending record into itself, notes the records' ids
in `journal_folds`, commits, and only then drops those records from the file: a crash between the
commit and the drop folds nothing twice. A crash in the middle of an append leaves a torn line that was
never acknowledged; it is skipped. Appends, and a fold's read and drop, take an flock on the journal
itself, so they never interleave; a fold does not hold it while it commits, so an append never waits
for the database (records appended meanwhile are kept for the next fold).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from panel.errors import StoreError

JOURNAL_SUFFIX = ".journal.jsonl"
JournalRecord = dict[str, Any]


def _encode(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()  # with its offset: DuckDB reads it back into TIMESTAMPTZ exactly
    raise TypeError(f"{type(value).__name__} is not journaled")


class Journal:
    """The append-only journal beside one database file."""

    def __init__(self, db_path: Path) -> None:
        self.path = db_path.with_name(db_path.name + JOURNAL_SUFFIX)

    def append(self, *records: JournalRecord) -> None:
        """Write records (one line each) with one fsync; raise StoreError naming the journal if the disk refuses."""
        # ASCII escapes keep any text (even a lone surrogate from a model) one valid line
        lines = b"".join((json.dumps(record, default=_encode) + "\n").encode("ascii") for record in records)
        created = not self.path.exists()
        try:
            with self._locked("a+b") as handle:
                if handle.seek(0, os.SEEK_END) and _ends_torn(handle):
                    handle.write(b"\n")  # a crash cut the last line short: keep this record on a line of its own
                handle.write(lines)
                handle.flush()
                os.fsync(handle.fileno())
            if created:  # the new file's name must survive a power cut too
                _fsync_folder(self.path.parent)
        except OSError as error:
            raise StoreError(f"{self.path}: cannot write the run journal ({error.strerror or error})") from None

    def pending(self) -> list[JournalRecord]:
        """The records not yet folded into the database, oldest first."""
        if self.empty():
            return []
        with self._locked("rb", shared=True) as handle:
            return _parse(handle.read())

    @contextlib.contextmanager
    def folding(self) -> Iterator[list[JournalRecord]]:
        """Yield the journal's records; when the block (which commits them) ends normally, drop them from the file.

        The journal is locked only to read it and to drop what was read, not while the block commits, so an
        append (a vote being acknowledged) never waits for the database. Records appended meanwhile stay.
        """
        if self.empty():
            yield []
            return
        with _fold_lock(self.path):  # one fold at a time in this process; DuckDB's file lock keeps out others'
            with self._locked("rb", shared=True) as handle:
                folded = handle.read()
            yield _parse(folded)
            self._drop(len(folded))

    def _drop(self, size: int) -> None:
        """Remove the first `size` bytes (records now in the database), keeping any appended after them."""
        with self._locked("r+b") as handle:
            handle.seek(size)
            rest = handle.read()
            if not rest:
                handle.truncate(0)
                os.fsync(handle.fileno())
                return
            # Whole lines appended during the fold move to a fresh file that replaces this one in one rename; an
            # append waiting for the lock on the old file notices (_locked) and writes to the new one.
            partial = self.path.with_name(self.path.name + ".partial")
            with open(partial, "wb") as fresh:
                fresh.write(rest)
                fresh.flush()
                os.fsync(fresh.fileno())
            os.replace(partial, self.path)
            _fsync_folder(self.path.parent)

    def empty(self) -> bool:
        """True when nothing waits to be folded (no file, or an emptied one); a cheap stat, no read."""
        try:
            return self.path.stat().st_size == 0
        except FileNotFoundError:
            return True

    @contextlib.contextmanager
    def _locked(self, mode: str, shared: bool = False) -> Iterator[IO[bytes]]:
        while True:
            handle = open(self.path, mode)
            fcntl.flock(handle, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            if _same_file(handle, self.path):
                break
            handle.close()  # a fold replaced the file while this waited for its lock: lock the new one
        try:
            yield handle
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()


_FOLD_LOCKS: dict[Path, threading.Lock] = {}
_FOLD_LOCKS_GUARD = threading.Lock()


def _fold_lock(path: Path) -> threading.Lock:
    with _FOLD_LOCKS_GUARD:
        return _FOLD_LOCKS.setdefault(path.resolve(), threading.Lock())


def _same_file(handle: IO[bytes], path: Path) -> bool:
    try:
        return os.fstat(handle.fileno()).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


def _ends_torn(handle: IO[bytes]) -> bool:
    handle.seek(-1, os.SEEK_END)
    return handle.read(1) != b"\n"


def _parse(text: bytes) -> list[JournalRecord]:
    records = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a torn append: its writer never heard it was stored
        if isinstance(record, dict) and "id" in record and "kind" in record:
            records.append(record)
    return records


def _fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
