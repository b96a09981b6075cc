"""Answer versions: an editor's "ask again" answers of a run item, beside the model's original, and which one shows.

Version 0 is the model's original (the run item's own cache key, at its current generation); versions 1, 2, ...
are rows of `answer_versions`, each naming the answer (cache key and generation) an ask-again stored in
`verdicts`. The latest row of `version_picks` per item says which the page uses (none: the original);
views.current_verdicts reads both, so load_run, the pages and the views show the picked version. Nothing here
checks an editor's request: panel/ask_again.py holds the rules and calls these with what passed them.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import duckdb

from panel.errors import StoreError
from panel.store.connection import Database, records
from panel.store.records import AnswerVersion

_ITEM = "run_id = $run AND pair_index = $pair AND tool_id = $tool AND persona_id = $persona"

_VERSIONS = f"""
    WITH pick AS (
        SELECT number FROM version_picks WHERE {_ITEM} ORDER BY created_at DESC, pick_id DESC LIMIT 1
    ), original AS (
        SELECT 0 AS number, v.cache_key, v.generation, NULL::VARCHAR AS note, NULL::VARCHAR AS editor,
               v.created_at, v.verdict, v.confidence, v.headline, v.review, v.valid
        FROM verdicts v WHERE v.cache_key = (SELECT cache_key FROM run_items WHERE {_ITEM})
        QUALIFY v.generation = max(v.generation) OVER ()
    ), asked AS (
        SELECT a.number, a.cache_key, a.generation, a.note, a.editor, a.created_at,
               v.verdict, v.confidence, v.headline, v.review, v.valid
        FROM answer_versions a JOIN verdicts v ON v.cache_key = a.cache_key AND v.generation = a.generation
        WHERE a.{_ITEM.replace(" AND ", " AND a.")}
    )
    SELECT number, cache_key, generation, verdict, confidence, headline, review, valid, note, editor, created_at,
           number = coalesce((SELECT number FROM pick), 0) AS picked
    FROM (SELECT * FROM original UNION ALL SELECT * FROM asked) ORDER BY number"""


class VersionStore(Database):
    """Answer versions and picks: append-only rows; the latest pick per run item is in force."""

    def versions(self, run_id: str, pair_index: int, tool_id: str, persona_id: str) -> list[AnswerVersion]:
        """Every answer version of one run item, the model's original (0) first, each marked if the page uses it."""
        with self.reader() as con:
            return records(con.execute(_VERSIONS, _item(run_id, pair_index, tool_id, persona_id)), AnswerVersion)

    def add_version(
        self,
        run_id: str,
        pair_index: int,
        tool_id: str,
        persona_id: str,
        cache_key: str,
        *,
        editor: str,
        note: str | None,
        use: bool = False,
    ) -> tuple[int, bool]:
        """Record the current stored answer of `cache_key` as the item's next version; return (its number, new?).

        A version of this item already holding that very answer (key and generation) is returned instead of a new
        one. `use` also picks it for the page. The transaction first folds the journal, where the answer was put.
        Raises StoreError when no answer of `cache_key` is stored.
        """
        with self.transaction() as con:
            found = con.execute("SELECT max(generation) FROM verdicts WHERE cache_key = ?", [cache_key]).fetchall()
            generation = found[0][0]
            if generation is None:
                raise StoreError(f"{self.path}: no stored answer {cache_key[:12]} to keep as a version")
            params = _item(run_id, pair_index, tool_id, persona_id)
            same = con.execute(
                f"SELECT number FROM answer_versions WHERE {_ITEM} AND cache_key = $key AND generation = $generation",
                {**params, "key": cache_key, "generation": generation},
            ).fetchall()
            if same:
                number, created = same[0][0], False
            else:
                number = con.execute(
                    f"SELECT coalesce(max(number), 0) + 1 FROM answer_versions WHERE {_ITEM}", params
                ).fetchall()[0][0]
                con.execute(
                    """INSERT INTO answer_versions (run_id, pair_index, tool_id, persona_id, number, cache_key,
                                                   generation, note, editor, created_at)
                       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                    [
                        run_id,
                        pair_index,
                        tool_id,
                        persona_id,
                        number,
                        cache_key,
                        generation,
                        note,
                        editor,
                        datetime.now(timezone.utc),
                    ],
                )
                created = True
            if use:
                _insert_pick(con, run_id, pair_index, tool_id, persona_id, number, editor)
        return number, created

    def pick_version(
        self, run_id: str, pair_index: int, tool_id: str, persona_id: str, number: int, *, editor: str
    ) -> None:
        """Make version `number` (0: the model's original) the one the page uses for this item, from now on."""
        with self.transaction() as con:
            _insert_pick(con, run_id, pair_index, tool_id, persona_id, number, editor)


def _item(run_id: str, pair_index: int, tool_id: str, persona_id: str) -> dict[str, object]:
    return {"run": run_id, "pair": pair_index, "tool": tool_id, "persona": persona_id}


def _insert_pick(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    pair_index: int,
    tool_id: str,
    persona_id: str,
    number: int,
    editor: str,
) -> None:
    con.execute(
        """INSERT INTO version_picks (run_id, pair_index, tool_id, persona_id, number, editor, created_at)
           VALUES (?, ?, ?, ?, ?, ?, ?)""",
        [run_id, pair_index, tool_id, persona_id, number, editor, datetime.now(timezone.utc)],
    )


def copy_versions(con: duckdb.DuckDBPyConnection, db_path: Path, run_id: str) -> None:
    """Copy one run's versions and picks, and the answers they name, from the database at `db_path` (read-only)
    into `con` (an in-memory copy of the run made by journal_reads.copy_run, which knows nothing of versions)."""
    con.execute(f"ATTACH '{str(db_path).replace(chr(39), chr(39) * 2)}' AS stored_versions (READ_ONLY)")
    try:
        for table in ("answer_versions", "version_picks"):
            con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM stored_versions.{table} WHERE run_id = ?", [run_id])
        con.execute(
            """INSERT INTO verdicts BY NAME SELECT * EXCLUDE (verdict_id) FROM stored_versions.verdicts
               WHERE cache_key IN (SELECT cache_key FROM stored_versions.answer_versions WHERE run_id = $run)
                 AND cache_key NOT IN (SELECT cache_key FROM verdicts)""",
            {"run": run_id},
        )
    finally:
        con.execute("DETACH stored_versions")
