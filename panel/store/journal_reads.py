"""Reading a run's writes before they fold: what the writing process sees while a reader holds the database.

The run journal (journal.py) holds records not yet in DuckDB; the writing process reads through it so that a
rerun never pays for a journaled answer (journaled_answers) and the chair and the page never miss one
(copy_run: the run's stored rows copied into memory, for run_writes.fold to apply the journal on top).
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from panel.store.journal import JournalRecord
from panel.store.records import AnsweredVerdict


def journaled_answers(records: list[JournalRecord], cache_keys: list[str]) -> dict[str, AnsweredVerdict]:
    """The latest journaled answer for each of `cache_keys` (newer than any stored: it was written later)."""
    wanted, found = set(cache_keys), {}
    for record in records:
        for v in record.get("verdicts", []) if record["kind"] == "answers" else []:
            if v["cache_key"] in wanted:
                found[v["cache_key"]] = AnsweredVerdict(
                    v["cache_key"],
                    v["verdict"],
                    v["confidence"],
                    v["headline"],
                    v["review"],
                    v["valid"],
                    v["prompt_tokens"],
                    v["completion_tokens"],
                    v.get("verdict_probability"),
                )
    return found


def copy_run(con: duckdb.DuckDBPyConnection, db_path: Path, run_id: str, records: list[JournalRecord]) -> None:
    """Copy one run's rows from the database at `db_path` (read-only) into the empty panel schema of `con`.

    Enough for load_run once `records` are folded on top: the run, its pairs, tools, items and overrides,
    every verdict of its items or the records' (without ids: the copy numbers its own), all prompt versions.
    """
    keys = {v["cache_key"] for r in records if r["kind"] == "answers" for v in r["verdicts"]}
    keys |= {item[-1] for r in records if r["kind"] in ("run", "items") for item in r["items"]}
    con.execute(f"ATTACH '{str(db_path).replace(chr(39), chr(39) * 2)}' AS stored (READ_ONLY)")
    params = {"run": run_id, "records": [r["id"] for r in records]}
    try:
        for table, where in (
            ("runs", "run_id = $run"),
            ("pairs", "run_id = $run"),
            ("run_items", "run_id = $run"),
            ("overrides", "run_id = $run"),
            ("consensus", "run_id = $run"),
            ("prompt_versions", "true"),
            (
                "tools",
                "tool_id IN (SELECT left_tool_id FROM stored.pairs WHERE run_id = $run "
                "UNION SELECT right_tool_id FROM stored.pairs WHERE run_id = $run)",
            ),
            ("journal_folds", "record_id IN (SELECT unnest($records))"),
        ):
            con.execute(
                f"INSERT INTO {table} BY NAME SELECT * FROM stored.{table} WHERE {where}",
                {name: value for name, value in params.items() if f"${name}" in where},
            )
        con.execute(
            """INSERT INTO verdicts BY NAME SELECT * EXCLUDE (verdict_id) FROM stored.verdicts
                       WHERE cache_key IN (SELECT cache_key FROM stored.run_items WHERE run_id = $run)
                          OR cache_key IN (SELECT unnest($keys))""",
            {"run": run_id, "keys": sorted(keys)},
        )
    finally:
        con.execute("DETACH stored")
