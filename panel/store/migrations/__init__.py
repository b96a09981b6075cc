"""Numbered schema changes, applied once, in order, each in a transaction with its record.

Add a migration by writing its function in pipeline.py or workflows.py (by what its tables serve) and appending
it to MIGRATIONS; never edit or renumber a shipped one. Migrations make
tables, columns and sequences only: the views are defined once in store/views.py and (re)created after the
migrations by the schema check (store/schema.py). docs/schema.md describes the resulting tables and views.
"""

from __future__ import annotations

from collections.abc import Callable

import duckdb

from panel.errors import StoreError
from panel.store.migrations.pipeline import (
    m001_core,
    m002_editorial,
    m007_run_purpose,
    m008_override_pair,
    m009_journal_folds,
    m010_attempt_cost,
    views_come_after,
)
from panel.store.migrations.workflows import (
    m012_answer_versions,
    m013_approvals_and_publications,
    m014_batches,
    m015_subscribers,
    m016_trust,
    m017_verdict_probability,
)

Migration = Callable[[duckdb.DuckDBPyConnection], None]
MIGRATIONS: list[tuple[int, str, Migration]] = [
    (1, "core", m001_core),
    (2, "editorial", m002_editorial),
    (6, "warehouse views", views_come_after),
    (7, "run purpose", m007_run_purpose),
    (8, "override pair and headline", m008_override_pair),
    (9, "journal folds", m009_journal_folds),
    (10, "attempt cost", m010_attempt_cost),
    (11, "probe-free views and spend", views_come_after),
    (12, "answer versions", m012_answer_versions),
    (13, "approvals and publications", m013_approvals_and_publications),
    (14, "batches", m014_batches),
    (15, "newsletter subscribers and digest sends", m015_subscribers),
    (16, "jury consensus and check flips", m016_trust),
    (17, "verdict token probability", m017_verdict_probability),
]


def applied(con: duckdb.DuckDBPyConnection) -> list[int]:
    """Migration numbers already applied to this database (works read-only once the table exists)."""
    if not con.execute(
        "SELECT 1 FROM duckdb_tables() WHERE database_name = current_database() "
        "AND schema_name = 'main' AND table_name = 'schema_migrations'"
    ).fetchall():
        if _holds_objects(con):  # someone else's database: giving it the panel schema would mix the two
            raise StoreError(
                "not a panel database (it has tables of its own and no panel migration record); "
                "give --db a panel database or a new file"
            )
        con.execute(
            "CREATE TABLE schema_migrations ("
            "number INTEGER PRIMARY KEY, name VARCHAR NOT NULL, applied_at TIMESTAMPTZ NOT NULL)"
        )
    return [row[0] for row in con.execute("SELECT number FROM schema_migrations ORDER BY number").fetchall()]


def _holds_objects(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the database has any table, view or sequence of its own (an empty DuckDB file has none)."""
    where = "database_name = current_database() AND NOT internal AND NOT temporary"
    return bool(
        con.execute(f"""SELECT 1 FROM duckdb_tables() WHERE {where} UNION ALL
                                SELECT 1 FROM duckdb_views() WHERE {where} UNION ALL
                                SELECT 1 FROM duckdb_sequences() WHERE database_name = current_database()
                                AND NOT temporary LIMIT 1""").fetchall()
    )


def pending(con: duckdb.DuckDBPyConnection) -> list[tuple[int, str, Migration]]:
    """Migrations not yet applied; raise StoreError for a database from a newer panel."""
    done = applied(con)
    newest = MIGRATIONS[-1][0]
    if done and max(done) > newest:
        raise StoreError(
            f"database schema version {max(done)} is newer than this panel (knows up to {newest}): upgrade panel"
        )
    return [m for m in MIGRATIONS if m[0] not in done]


def migrate(con: duckdb.DuckDBPyConnection) -> None:
    """Apply pending migrations, each in its own transaction with its record."""
    numbers = [m[0] for m in MIGRATIONS]
    assert numbers == sorted(set(numbers)), "migration numbers must be unique and ascending"
    for number, name, migration in pending(con):
        con.execute("BEGIN TRANSACTION")
        try:
            migration(con)
            con.execute("INSERT INTO schema_migrations VALUES (?, ?, now())", [number, name])
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
