"""The analysts' warehouse: read-only SQL over the panel database, and exports of every table and view.

Reading while a run writes (docs/schema.md, "Reading while a run writes"): a run opens the DuckDB file only
for short transactions, so a read-only connection gets in between, waiting up to `wait_s` for a write in
progress. While a reader is open the writer waits in turn, so a query is cancelled after `timeout_s`.

`panel export` copies the database to a snapshot while holding it (a fast file copy), then writes every
file from the snapshot: the files agree with each other and a running review waits only for the copy.

What `panel sql` accepts: exactly one SELECT (WITH, FROM-first, VALUES, DESCRIBE, SHOW and SUMMARIZE
parse as SELECT) or EXPLAIN. It is refused before the database is opened otherwise, and it runs on a
read-only connection with file access, extension installs and configuration changes switched off, so
COPY, ATTACH, INSTALL/LOAD, SET, PRAGMA and file-reading or -writing table functions cannot get through
either check.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from panel.errors import StoreError
from panel.store import LOCK_RETRY_S, Store, connect
from panel.store.connection import DuckDBConfig
from panel.store.migrations import pending
from panel.store.schema import missing_data, read_schema, stale_views

QUERY_TIMEOUT_S = 10.0
_RESULT_VIEW = "panel_sql_result"  # a temporary view, private to the query's own read-only connection
EXPORT_FORMATS = ("parquet", "csv")
READ_ONLY_STATEMENTS = (duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN)
# A query runs with no file system, no extension downloads, and a locked configuration.
SANDBOX: DuckDBConfig = {
    "enable_external_access": "false",
    "autoinstall_known_extensions": "false",
    "autoload_known_extensions": "false",
    "lock_configuration": "true",
}


@dataclass(frozen=True)
class QueryResult:
    """Column names and rows of one query, fetched in full before the connection closed."""

    columns: list[str]
    rows: list[tuple[Any, ...]]


@dataclass(frozen=True)
class ExportedObject:
    """One table or view written to a file, with its row count."""

    name: str
    kind: str  # table | view
    rows: int
    path: Path


def _one_line(error: Exception) -> str:
    """DuckDB's message without the LINE/caret block, on one line."""
    kept = []
    for line in str(error).splitlines():
        if line.startswith("LINE "):
            break
        if line.strip():
            kept.append(line.strip())
    return " ".join(kept)


def check_read_only_sql(sql: str) -> str:
    """The statement if it is one SELECT or EXPLAIN; StoreError naming what was refused otherwise."""
    parser = duckdb.connect(":memory:", config=SANDBOX)
    try:
        statements = parser.extract_statements(sql)
    except duckdb.Error as error:
        raise StoreError(f"SQL error: {_one_line(error)}") from None
    finally:
        parser.close()
    if not statements:
        raise StoreError('no SQL statement given: pass one SELECT, e.g. panel sql "SELECT * FROM pair_summary"')
    if len(statements) > 1:
        raise StoreError(f"panel sql runs one statement at a time; got {len(statements)}")
    kind = statements[0].type
    if kind not in READ_ONLY_STATEMENTS:
        raise StoreError(f"refused: panel sql only reads (SELECT or EXPLAIN); this is a {kind.name} statement")
    return sql


@contextlib.contextmanager
def open_warehouse(
    path: str | Path, wait_s: float = LOCK_RETRY_S, sandboxed: bool = True
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection to a panel database at the current schema (an older one is upgraded first)."""
    path = Path(path)
    if not path.exists():
        raise StoreError(f"{path}: no panel database here; run `panel review` first or pass --db")
    con = _open_current(path, wait_s, sandboxed)
    try:
        yield con
    finally:
        con.close()


def _open_current(path: Path, wait_s: float, sandboxed: bool) -> duckdb.DuckDBPyConnection:
    config = SANDBOX if sandboxed else None
    con = connect(path, read_only=True, wait_s=wait_s, config=config)
    try:
        outdated = bool(pending(con))  # raises StoreError for a database from a newer panel
        # A dropped or outdated view is recreated, a dropped table refused, by the Store's check on open.
        found = read_schema(con)
        outdated = outdated or bool(missing_data(found) or stale_views(found))
    except duckdb.Error:
        con.close()
        raise StoreError(f"{path}: not a panel database (it has no schema_migrations table)") from None
    except StoreError as error:
        con.close()
        raise StoreError(f"{path}: {error}") from None
    if not outdated:
        return con
    con.close()
    Store(path)  # applies the pending migrations in a short write transaction, as any panel command does
    return connect(path, read_only=True, wait_s=wait_s, config=config)


def run_query(
    path: str | Path, sql: str, timeout_s: float = QUERY_TIMEOUT_S, wait_s: float = LOCK_RETRY_S
) -> QueryResult:
    """Run one read-only statement and fetch every row; StoreError if refused, failed or too slow."""
    statement = check_read_only_sql(sql)
    with open_warehouse(path, wait_s) as con:
        timer = threading.Timer(timeout_s, con.interrupt)
        timer.start()
        try:
            cursor = con.execute(_in_utc(con, statement))
            columns = [column[0] for column in cursor.description or []]
            rows = cursor.fetchall()
        except duckdb.InterruptException:
            raise StoreError(
                f"query cancelled after {timeout_s:g} s so that a running review is not held up; "
                "narrow it, raise --timeout, or query the files of `panel export`"
            ) from None
        except duckdb.Error as error:
            raise StoreError(f"SQL error: {_one_line(error)}") from None
        finally:
            timer.cancel()
    return QueryResult(columns, rows)


def _in_utc(con: duckdb.DuckDBPyConnection, statement: str) -> str:
    """The statement with its TIMESTAMPTZ columns as UTC TIMESTAMPs (Python's zoned datetimes are slow)."""
    try:
        # A prefix, not a wrapping subquery, so a trailing semicolon or comment in `statement` is harmless.
        con.execute(f"CREATE OR REPLACE TEMP VIEW {_RESULT_VIEW} AS {statement}")
        described = con.execute(f"SELECT column_name, column_type FROM (DESCRIBE {_RESULT_VIEW})").fetchall()
    except duckdb.Error:
        return statement  # EXPLAIN cannot be a view; its errors, if any, surface when it runs
    if not any(kind == "TIMESTAMP WITH TIME ZONE" for _, kind in described):
        return statement
    columns = []
    for name, kind in described:
        quoted = '"' + name.replace('"', '""') + '"'
        columns.append(f"timezone('UTC', {quoted}) AS {quoted}" if kind == "TIMESTAMP WITH TIME ZONE" else quoted)
    return f"SELECT {', '.join(columns)} FROM {_RESULT_VIEW}"


def warehouse_objects(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    """(name, 'table' | 'view') of everything an analyst can query, tables first."""
    return con.execute("""
        SELECT table_name, 'table' FROM duckdb_tables()
        WHERE database_name = current_database() AND schema_name = 'main' AND NOT internal AND NOT temporary
        UNION ALL
        SELECT view_name, 'view' FROM duckdb_views()
        WHERE database_name = current_database() AND schema_name = 'main' AND NOT internal AND NOT temporary
        ORDER BY 2, 1""").fetchall()


def export(
    path: str | Path, out_dir: str | Path, file_format: str = "parquet", wait_s: float = LOCK_RETRY_S
) -> list[ExportedObject]:
    """Write each table and view to out_dir/<name>.<format>, all from one snapshot of the database."""
    if file_format not in EXPORT_FORMATS:
        raise StoreError(f"--format must be one of {', '.join(EXPORT_FORMATS)}, not {file_format!r}")
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise StoreError(f"{out_dir}: cannot create the export folder ({error.strerror})") from None
    snapshot = out_dir / f".snapshot-{os.getpid()}.duckdb"
    try:
        snapshot_database(Path(path), snapshot, wait_s)
        with contextlib.closing(connect(snapshot, read_only=True)) as con:
            return [_export_object(con, name, kind, out_dir, file_format) for name, kind in warehouse_objects(con)]
    finally:
        for leftover in (snapshot, snapshot.with_name(snapshot.name + ".wal")):
            leftover.unlink(missing_ok=True)


def snapshot_database(path: Path, snapshot: Path, wait_s: float = LOCK_RETRY_S) -> None:
    """Copy the database (and any WAL) while a read-only connection keeps writers out, so a writer waits for
    the copy (under a second per GB), not for a whole export."""
    with open_warehouse(path, wait_s):
        try:
            shutil.copyfile(path, snapshot)
            wal = path.with_name(path.name + ".wal")
            if wal.exists():
                shutil.copyfile(wal, snapshot.with_name(snapshot.name + ".wal"))
        except OSError as error:
            raise StoreError(f"{snapshot.parent}: cannot write the export ({error.strerror})") from None


def _export_object(
    con: duckdb.DuckDBPyConnection, name: str, kind: str, out_dir: Path, file_format: str
) -> ExportedObject:
    target = out_dir / f"{name}.{file_format}"
    partial = target.with_name(target.name + ".partial")
    options = "FORMAT parquet, COMPRESSION zstd" if file_format == "parquet" else "FORMAT csv, HEADER true"
    quoted_name = '"' + name.replace('"', '""') + '"'
    quoted_path = "'" + str(partial).replace("'", "''") + "'"
    try:
        rows = con.execute(f"COPY (SELECT * FROM {quoted_name}) TO {quoted_path} ({options})").fetchall()
    except duckdb.Error as error:
        partial.unlink(missing_ok=True)
        raise StoreError(f"export of {name} to {target} failed: {_one_line(error)}") from None
    os.replace(partial, target)  # a reader of the folder never sees a half-written file
    return ExportedObject(name, kind, int(rows[0][0]), target)
