"""Connections and locks: opening the file (retrying while another process holds it), transactions that fold
the run journal first, the writer lock, and rows read into records by column name."""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Self, TypeVar

import duckdb

from panel.errors import DatabaseBusy, StoreError
from panel.store.journal import Journal, JournalRecord
from panel.store.migrations import migrate, pending
from panel.store.run_writes import fold
from panel.store.schema import check_schema, insert_probe_rows, read_schema, refuse_missing_data

LOCK_RETRY_S = 15.0
# Opening the database for writing tries this long before it settles for reading the schema version.
OPEN_WAIT_S = 1.0
Record = TypeVar("Record")
# What duckdb.connect accepts as `config` (its own annotation).
DuckDBConfig = dict[str, str | bool | int | float | list[str]]


def _is_lock_conflict(error: Exception) -> bool:
    return "lock" in str(error).lower() and "conflict" in str(error).lower() or "Could not set lock" in str(error)


_FILE_LOCKS: dict[Path, threading.RLock] = {}
_FILE_LOCKS_GUARD = threading.Lock()


def in_process_lock(path: Path) -> threading.RLock:
    """The lock this process's threads hold around any connection to the database at `path`.

    DuckDB keeps one instance per file in a process: while one thread has the file open read-write (a desk's
    job storing answers), another cannot open it read-only (the desk's page) or ATTACH it (a journal copy),
    and the other way round. Taking turns inside the process, as other processes do through the file lock.
    """
    key = path.absolute()
    with _FILE_LOCKS_GUARD:
        return _FILE_LOCKS.setdefault(key, threading.RLock())


def connect(
    path: Path, read_only: bool, wait_s: float = LOCK_RETRY_S, config: DuckDBConfig | None = None
) -> duckdb.DuckDBPyConnection:
    """Open the database (with DuckDB `config` options), retrying while another process holds it briefly.

    Raises DatabaseBusy if it is still held after `wait_s`, StoreError if it cannot be opened at all.
    """
    deadline = time.monotonic() + wait_s
    delay = 0.02
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only, config=config or {})
        except duckdb.IOException as error:
            if not _is_lock_conflict(error) or time.monotonic() >= deadline:
                if _is_lock_conflict(error):
                    raise DatabaseBusy(f"{path}: database is locked by another process; try again") from None
                raise unusable(path, error, "open") from error
            time.sleep(delay)
            delay = min(delay * 2, 0.25)
        except duckdb.Error as error:
            raise unusable(path, error, "open") from error


def unusable(path: Path, error: duckdb.Error, doing: str) -> StoreError:
    """The one-line StoreError for DuckDB failing to `doing` (open, read, write) the file; --debug shows DuckDB's.

    DuckDB's own text is kept out of the line: besides checksums and offsets it can quote stored values.
    """
    text = str(error)
    if "not a valid DuckDB database file" in text:
        reason = "it is not a valid DuckDB database file"
    elif "Corrupt database file" in text:
        reason = "it is damaged (a block's checksum does not match)"
    elif "Could not read enough bytes" in text:
        reason = "it is damaged (the file ends before its last block: truncated?)"
    else:
        return StoreError(
            f"{path}: cannot {doing} the database (DuckDB {type(error).__name__}; --debug shows its message)"
        )
    return StoreError(
        f"{path}: cannot {doing} the database: {reason}; restore it from a backup or give --db another file"
    )


def records(cursor: duckdb.DuckDBPyConnection, record: type[Record]) -> list[Record]:
    """The cursor's rows as `record`s, each column passed as the keyword argument of its name."""
    return [record(**row) for row in named_rows(cursor)]


def named_rows(cursor: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """The cursor's rows as dicts of column name to value."""
    names = [column[0] for column in cursor.description or []]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


class Database:
    """The panel database file: connections (the first read-write one migrates), transactions and the writer lock.

    Store (store/database.py) adds the reads and writes of each area on top.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock_file: Any = None
        self._migrated = False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._open_for_writing()

    @classmethod
    def existing(cls, path: str | Path) -> Self:
        """Open a database that must already exist (commands that only read never create an empty one)."""
        if not Path(path).is_file():
            raise StoreError(f"{path}: no database here yet: run `panel review` first, or give --db")
        return cls(path)

    def _open_for_writing(self) -> None:
        """Create the file, apply pending migrations and fold the run journal, once, on open.

        While a reader holds the file, a database at the current schema with every table opens anyway (the
        run's writes wait in the journal); one that needs a migration waits for the reader like any write
        (LOCK_RETRY_S). Raises StoreError for a foreign, newer or damaged database either way.
        """
        try:
            with self.transaction(wait_s=OPEN_WAIT_S):
                return
        except DatabaseBusy:
            pass
        if not self._current_schema():
            with self.transaction():
                pass

    def _current_schema(self) -> bool:
        """What a read-only connection can check: True at the current schema; StoreError when tables are missing."""
        with self.reader() as con:
            try:
                if pending(con):
                    return False
                refuse_missing_data(read_schema(con))
            except StoreError as error:
                raise StoreError(f"{self.path}: {error}") from None
        return True

    @property
    def journal(self) -> Journal:
        """The run journal beside the database: writes of a run land there first (panel/store/journal.py)."""
        return Journal(self.path)

    @contextlib.contextmanager
    def _connection(self, read_only: bool, wait_s: float = LOCK_RETRY_S) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection, closed afterwards; a DuckDB failure (a damaged file) leaves as a one-line StoreError.

        The first read-write one of a Store applies pending migrations and checks the schema (an open that
        found the file busy could check only what a reader can).
        """
        doing = "read" if read_only else "write"
        with in_process_lock(self.path):
            con = connect(self.path, read_only=read_only, wait_s=wait_s)
            try:
                if not read_only and not self._migrated:  # once per Store: a run opens the file for every batch
                    self._bring_up_to_date(con)
                    self._migrated = True
                yield con
            except duckdb.Error as error:
                raise unusable(self.path, error, doing) from error
            finally:
                try:
                    con.close()  # a write's checkpoint may run here, and meet a damaged block
                except duckdb.Error as error:
                    raise unusable(self.path, error, doing) from error

    @contextlib.contextmanager
    def transaction(self, wait_s: float = LOCK_RETRY_S) -> Iterator[duckdb.DuckDBPyConnection]:
        """A short read-write transaction; the connection closes afterwards so readers can get in.

        It first folds whatever the run journal holds, so every write (of any panel command) stores
        journaled answers before its own rows. Raises DatabaseBusy if another process holds the file.
        """
        with self._connection(read_only=False, wait_s=wait_s) as con:
            with self.journal.folding() as records:  # emptied only once the transaction has committed
                con.execute("BEGIN TRANSACTION")
                try:
                    fold(con, records)
                    yield con
                    con.execute("COMMIT")
                except BaseException:
                    with contextlib.suppress(duckdb.Error):  # a failed commit has already ended the transaction
                        con.execute("ROLLBACK")
                    raise

    def _bring_up_to_date(self, con: duckdb.DuckDBPyConnection) -> None:
        try:
            migrate(con)
            check_schema(con)
        except StoreError as error:
            raise StoreError(f"{self.path}: {error}") from None

    def fold_journal(self, wait_s: float = LOCK_RETRY_S) -> bool:
        """Fold the run journal into the database; False if another process held the file all of `wait_s`."""
        if self.journal.empty():
            return True
        try:
            with self.transaction(wait_s):
                pass
        except DatabaseBusy:
            return False
        return True

    def _write_through_journal(self, record: JournalRecord, wait_s: float) -> None:
        """Make a run's write durable in the journal, then fold it if the database is free within `wait_s`.

        A reader holding the file only delays the fold: the record waits in the journal for the next write.
        """
        self.journal.append(record)
        self.fold_journal(wait_s)

    @contextlib.contextmanager
    def reader(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-only connection (retries while a writer's transaction is in progress)."""
        with self._connection(read_only=True) as con:
            yield con

    @contextlib.contextmanager
    def _rolled_back(self, wait_s: float = LOCK_RETRY_S) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-write transaction that is always rolled back: writes that prove the file takes them."""
        with self._connection(read_only=False, wait_s=wait_s) as con:
            con.execute("BEGIN TRANSACTION")
            try:
                yield con
            finally:
                with contextlib.suppress(duckdb.Error):
                    con.execute("ROLLBACK")

    def check_writable(self) -> None:
        """Raise StoreError unless every table takes a row (a probe, rolled back): before a writer's first write."""
        with self._rolled_back() as con:
            insert_probe_rows(con)

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the writer lock for the block, the database checked writable first (an editor's one-off write).

        Raises StoreError at once while another process (a review, `panel serve`) holds the lock.
        """
        self.acquire_writer()
        try:
            self.check_writable()
            yield
        finally:
            self.release_writer()

    def acquire_writer(self) -> None:
        """Become the one writing process for this database, or raise StoreError at once."""
        lock_path = self.path.with_name(self.path.name + ".lock")
        handle = open(lock_path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise StoreError(
                f"{self.path}: another panel run is writing this database ({holder}); wait for it to finish or use --db"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        self._lock_file = handle

    def release_writer(self) -> None:
        """Give up the writer lock (also released by the OS when the process dies)."""
        if self._lock_file is not None:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None
