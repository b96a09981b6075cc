"""The views are defined once (panel/store/views.py): no migration makes one, and every open recreates them from it."""

from __future__ import annotations

from pathlib import Path

import duckdb

from panel.store import Store
from panel.store.migrations import MIGRATIONS
from panel.store.schema import read_schema
from panel.warehouse import run_query


def _views(db: Path) -> dict[str, str]:
    with duckdb.connect(str(db), read_only=True) as con:
        return read_schema(con).views


def _database_at(db: Path, newest: int) -> None:
    """A database as a panel that knew migrations up to `newest` left it, without its views."""
    with duckdb.connect(str(db)) as con:
        con.execute(
            "CREATE TABLE schema_migrations (number INTEGER PRIMARY KEY, name VARCHAR NOT NULL, "
            "applied_at TIMESTAMPTZ NOT NULL)"
        )
        for number, name, migration in MIGRATIONS:
            if number <= newest:
                migration(con)
                con.execute("INSERT INTO schema_migrations VALUES (?, ?, now())", [number, name])


def test_no_migration_creates_a_view() -> None:
    con = duckdb.connect(":memory:")
    for _, _, migration in MIGRATIONS:
        migration(con)
    assert con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall() == []


def test_a_database_migrated_from_an_old_version_has_the_same_views_as_a_new_one(tmp_path: Path) -> None:
    new, old = tmp_path / "new.duckdb", tmp_path / "old.duckdb"
    Store(new)
    _database_at(old, newest=2)
    Store(old)
    assert _views(old) == _views(new) and "run_verdicts_all" in _views(new)


def test_a_view_an_older_panel_defined_otherwise_is_replaced_on_open(tmp_path: Path) -> None:
    db, fresh = tmp_path / "panel.duckdb", tmp_path / "fresh.duckdb"
    Store(fresh)
    Store(db)
    with duckdb.connect(str(db)) as con:  # as an older panel's migration left it: a column fewer
        con.execute("CREATE OR REPLACE VIEW spend AS SELECT run_id FROM runs")
    assert run_query(db, "SELECT count(*) FROM spend WHERE cost_usd IS NULL").rows == [(0,)]
    assert _views(db) == _views(fresh)
