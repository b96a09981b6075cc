"""What a panel database must hold, and the check every open for writing runs after the migrations.

The expected tables (with their columns), views and sequences are read from a scratch in-memory database
built by the same MIGRATIONS and store/views.py, so there is no second list to keep in step with them. Views
missing or defined otherwise than in views.py are all recreated from it (views are derived: nothing stored is
lost), so a database migrated from any old version ends with the same views as a new one; a missing table,
column or sequence holds or numbers data, so the database is refused with one line naming what is gone.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import duckdb

from panel.errors import StoreError
from panel.store.migrations import migrate
from panel.store.views import create_views

# A probe row's value per column type: never a real key (ids count from 1, run and tool ids are hashes).
_PROBE_VALUES: dict[str, Any] = {
    "VARCHAR": "panel write probe",
    "INTEGER": -1,
    "BIGINT": -1,
    "DOUBLE": 0.0,
    "BOOLEAN": False,
    "TIMESTAMP WITH TIME ZONE": datetime(2000, 1, 1, tzinfo=timezone.utc),
}


@dataclass(frozen=True)
class Schema:
    """The tables (column -> type, in order), views (-> CREATE VIEW statement) and sequences of a database."""

    tables: dict[str, dict[str, str]]
    views: dict[str, str]
    sequences: frozenset[str]


def read_schema(con: duckdb.DuckDBPyConnection) -> Schema:
    """The user-made objects of the connection's database, main schema (works read-only)."""
    where = "database_name = current_database() AND schema_name = 'main' AND NOT internal AND NOT temporary"
    tables: dict[str, dict[str, str]] = {}
    for table, column, kind in con.execute(f"""
            SELECT table_name, column_name, data_type FROM duckdb_columns()
            WHERE table_oid IN (SELECT table_oid FROM duckdb_tables() WHERE {where})
            ORDER BY table_name, column_index""").fetchall():
        tables.setdefault(table, {})[column] = kind
    for (table,) in con.execute(f"SELECT table_name FROM duckdb_tables() WHERE {where}").fetchall():
        tables.setdefault(table, {})
    views = dict(con.execute(f"SELECT view_name, sql FROM duckdb_views() WHERE {where}").fetchall())
    sequences = frozenset(
        row[0]
        for row in con.execute(
            "SELECT sequence_name FROM duckdb_sequences() WHERE database_name = current_database() "
            "AND schema_name = 'main' AND NOT temporary"
        ).fetchall()
    )
    return Schema(tables, views, sequences)


@functools.cache
def expected_schema() -> Schema:
    """The schema the migrations and views.py build, read from a scratch in-memory database (once per process)."""
    con = duckdb.connect(":memory:")
    try:
        migrate(con)
        create_views(con)
        return read_schema(con)
    finally:
        con.close()


def missing_data(found: Schema) -> list[str]:
    """Tables, columns and sequences the migrations made that `found` lacks, e.g. "table attempts"."""
    expected = expected_schema()
    gone = [f"table {name}" for name in expected.tables if name not in found.tables]
    gone += [
        f"column {table}.{column}"
        for table, columns in expected.tables.items()
        if table in found.tables
        for column in columns
        if column not in found.tables[table]
    ]
    return gone + [f"sequence {name}" for name in sorted(expected.sequences - found.sequences)]


def stale_views(found: Schema) -> list[str]:
    """The views of views.py that `found` lacks or defines otherwise (e.g. by an older panel's SQL)."""
    return [name for name, sql in expected_schema().views.items() if found.views.get(name) != sql]


def refuse_missing_data(found: Schema) -> None:
    """Raise StoreError naming a missing table, column or sequence (they held data); works read-only."""
    gone = missing_data(found)
    if gone:
        raise StoreError(
            f"{', '.join(gone)} missing: the database lost data panel cannot recreate; "
            "restore it from a backup, or give --db a new file"
        )


def check_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Recreate stale views; raise StoreError naming a missing table, column or sequence (they hold data)."""
    found = read_schema(con)
    refuse_missing_data(found)
    if stale_views(found):
        # Every table and column is there (refused above otherwise), so every view can be made; in one
        # transaction, as a migration, so the file is written (and synced) once, not once per view.
        con.execute("BEGIN TRANSACTION")
        try:
            create_views(con)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise


def insert_probe_rows(con: duckdb.DuckDBPyConnection) -> None:
    """Insert one probe row in every panel table, touching its storage and unique indexes (caller rolls back)."""
    for table, columns in expected_schema().tables.items():
        names = ", ".join(f'"{column}"' for column in columns)
        marks = ", ".join("?" for _ in columns)
        con.execute(
            f'INSERT INTO "{table}" ({names}) VALUES ({marks})', [_PROBE_VALUES.get(kind) for kind in columns.values()]
        )
