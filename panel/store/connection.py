"""Opening the database: retry briefly while another process holds it, one-line errors otherwise."""

from __future__ import annotations

import time
from pathlib import Path

import duckdb

from panel.errors import DatabaseBusy, StoreError

LOCK_RETRY_S = 15.0


def _is_lock_conflict(error: Exception) -> bool:
    return "lock" in str(error).lower() and "conflict" in str(error).lower() or "Could not set lock" in str(error)


def connect(path: Path, read_only: bool, wait_s: float = LOCK_RETRY_S,
            config: dict[str, str] | None = None) -> duckdb.DuckDBPyConnection:
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
        return StoreError(f"{path}: cannot {doing} the database (DuckDB {type(error).__name__}; "
                          "--debug shows its message)")
    return StoreError(f"{path}: cannot {doing} the database: {reason}; restore it from a backup or give --db "
                      "another file")
