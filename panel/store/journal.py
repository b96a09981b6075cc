"""The run journal `<db>.journal.jsonl`: a run's writes land here first, durably, then fold into DuckDB.

DuckDB refuses a read-write open while any other process reads the file, so a long `panel sql` query
would otherwise make a run wait and then drop answers it paid for. Instead every write of a run (its
record, its chair items, each batch of answers with their attempts, its status) is appended as one JSON
line and fsync'd before the database is tried. The next read-write transaction on the database, from
this process or any later panel command, folds every pending record into itself, notes the records' ids
in `journal_folds`, commits, and only then empties the file: a crash between the commit and the
truncation folds nothing twice. A crash in the middle of an append leaves a torn line that was never
acknowledged; it is skipped. Appends and folds take an flock on the journal itself, so they never
interleave, and an append never waits for the database.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
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

    def append(self, record: JournalRecord) -> None:
        """Write one record and fsync it; raise StoreError naming the journal if the disk refuses."""
        # ASCII escapes keep any text (even a lone surrogate from a model) one valid line
        line = (json.dumps(record, default=_encode) + "\n").encode("ascii")
        created = not self.path.exists()
        try:
            with self._locked("a+b") as handle:
                if handle.seek(0, os.SEEK_END) and _ends_torn(handle):
                    handle.write(b"\n")  # a crash cut the last line short: keep this record on a line of its own
                handle.write(line)
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
        """Hold the journal and yield its records; empty it when the block (which commits them) ends normally."""
        if self.empty():
            yield []
            return
        with self._locked("r+b") as handle:
            records = _parse(handle.read())
            yield records
            handle.truncate(0)
            os.fsync(handle.fileno())

    def empty(self) -> bool:
        """True when nothing waits to be folded (no file, or an emptied one); a cheap stat, no read."""
        try:
            return self.path.stat().st_size == 0
        except FileNotFoundError:
            return True

    @contextlib.contextmanager
    def _locked(self, mode: str, shared: bool = False) -> Iterator[IO[bytes]]:
        with open(self.path, mode) as handle:
            fcntl.flock(handle, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            try:
                yield handle
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


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
