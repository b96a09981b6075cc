"""Runs and verdicts: a run's record, items, answers and status (through the run journal), and reading them back."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import duckdb

from panel.answers import Answer, VerdictJob
from panel.cards import RunSpec, ToolCard
from panel.config import Settings
from panel.errors import DatabaseBusy, StoreError
from panel.personas import Persona, PromptTemplates
from panel.store.connection import LOCK_RETRY_S, OPEN_WAIT_S, Database, in_process_lock, named_rows, records, unusable
from panel.store.journal import JournalRecord
from panel.store.journal_reads import copy_run, journaled_answers
from panel.store.migrations import migrate
from panel.store.records import AnsweredVerdict, StoredRun, StoredVerdict
from panel.store.run_writes import answers_record, fold, items_record, run_record, status_record
from panel.store.schema import insert_probe_rows
from panel.store.trust import consensus_stored, read_consensus
from panel.store.versions import copy_versions
from panel.store.views import current_verdicts


def _stored_verdict(row: dict[str, Any]) -> StoredVerdict:
    """A run item's row of views.current_verdicts as the page shows it, with the override in force applied."""
    # A revert row (all NULL) changes nothing.
    changed = any(row[f"override_{field}"] is not None for field in ("verdict", "review", "headline"))
    shown = row["verdict"]
    # The model's headline argued for the model's verdict (or pick): a changed one drops it.
    headline = row["override_headline"] or (row["model_headline"] if shown == row["model_verdict"] else None)
    return StoredVerdict(
        row["persona_id"],
        row["tool_id"],
        shown,
        row["confidence"],
        headline,
        row["override_review"] or row["model_review"],
        json.loads(row["key_points_json"]) if row["key_points_json"] else [],
        row["valid"],
        row["attempt_count"],
        row["model"],
        row["persona_hash"],
        json.loads(row["flags_json"]),
        row["created_at"],
        model_verdict=row["model_verdict"],
        model_review=row["model_review"],
        override_editor=row["override_editor"] if changed else None,
        override_at=row["override_at"] if changed else None,
        version=row["version"],
    )


class RunStore(Database):
    """Runs and verdicts: what a review, compare or check writes and what tally and render read."""

    def begin_run(
        self,
        run_id: str,
        spec: RunSpec,
        settings: Settings,
        personas: list[Persona],
        templates: PromptTemplates,
        jobs: list[VerdictJob],
        purpose: str = "review",
        wait_s: float = LOCK_RETRY_S,
    ) -> None:
        """Record a run, its tools, pairs, prompt versions and planned items (idempotent; through the journal).

        A run first recorded as a review stays one when a maintainer's compare or check reuses it.
        """
        self.record_run(run_record(run_id, spec, settings, personas, templates, jobs, purpose), wait_s)

    def record_run(self, record: JournalRecord, wait_s: float = LOCK_RETRY_S) -> None:
        """Store a run's record (run_writes.run_record) through the journal, as begin_run does."""
        self._write_through_journal(record, wait_s)

    def rehearse_run(
        self, record: JournalRecord, cache_keys: list[str], answered: bool = True
    ) -> tuple[set[str], bool]:
        """Rehearse a run's first writes before its first request; return the `cache_keys` answered already, and
        whether a jury's or samples' consensus is stored for the run (jury.ask_members clears a stale one).

        Storing nothing: the run's record, a probe row in every table and the read that storing answers makes
        run in a transaction that is rolled back, so a damaged file raises StoreError before a run's first
        request rather than in its writer thread (a few tens of ms; no commit, no checkpoint). The answered keys
        (as answered_keys; none asked for when `answered` is False) are read on the same connection.
        """
        try:
            with self._rolled_back(wait_s=OPEN_WAIT_S) as con:
                found = self._answered_keys(con, cache_keys) if answered else set()
                insert_probe_rows(con)
                fold(con, [record])
                # Committing the run's status rewrites the runs table (one row per run: cheap to read whole).
                con.execute("SELECT max(hash(COLUMNS(*))) FROM runs").fetchall()
                con.execute(
                    """SELECT cache_key, max(generation) FROM verdicts
                               WHERE cache_key IN (SELECT unnest(?)) GROUP BY cache_key""",
                    [cache_keys],
                ).fetchall()
                return found, consensus_stored(con, str(record["run_id"]))
        except DatabaseBusy:  # a reader holds the file: the run's writes wait in the journal for it
            self._current_schema()  # but a damaged one is refused before the first request all the same
            with self.reader() as con:
                stored = consensus_stored(con, str(record["run_id"]))
            return (self.answered_keys(cache_keys) if answered else set()), stored

    def add_run_items(
        self, run_id: str, jobs: list[VerdictJob], prompt_kind: str, wait_s: float = LOCK_RETRY_S
    ) -> None:
        """Record extra items (the chair's) of a stored run with their prompt versions; idempotent, via the journal."""
        self._write_through_journal(items_record(run_id, jobs, prompt_kind), wait_s)

    def answered_keys(self, cache_keys: list[str]) -> set[str]:
        """The cache keys whose current verdict is valid (a rerun skips them; a failed --refresh is asked again)."""
        with self.reader() as con:
            return self._answered_keys(con, cache_keys)

    def _answered_keys(self, con: duckdb.DuckDBPyConnection, cache_keys: list[str]) -> set[str]:
        return {key for key, answer in self._answered_verdicts(con, cache_keys).items() if answer.valid}

    def save_answers(
        self,
        run_id: str,
        answers: list[Answer],
        settings: Settings,
        wait_s: float = LOCK_RETRY_S,
        finish_status: str | None = None,
        fold: bool = True,
    ) -> None:
        """Store verdicts (valid or not) with all their attempts as one journal record, folded when the file is free.

        With `finish_status`, the run is marked finished/incomplete/stopped in the same record. `fold` False
        leaves the record in the journal, durable, for a later write to fold.
        """
        if answers or finish_status is not None:
            record = answers_record(run_id, answers, settings, finish_status)
            if fold:
                self._write_through_journal(record, wait_s)
            else:
                self.journal.append(record)

    def finish_run(self, run_id: str, status: str, wait_s: float = LOCK_RETRY_S) -> None:
        """Mark a run finished, incomplete (some verdicts missing) or stopped (budget, Ctrl-C), through the journal."""
        self._write_through_journal(status_record(run_id, status), wait_s)

    def resolve_run_id(self, run_ref: str | None) -> str:
        """A full run id from a prefix, or the latest editor's run (not a compare/check probe) when None."""
        with self.reader() as con:
            if run_ref is None:
                rows = con.execute(
                    "SELECT run_id FROM runs WHERE purpose = 'review' ORDER BY started_at DESC LIMIT 1"
                ).fetchall()
            else:
                rows = con.execute("SELECT run_id FROM runs WHERE starts_with(run_id, ?)", [run_ref]).fetchall()
        if not rows:
            raise StoreError(f"{self.path}: no run " + (f"matching '{run_ref}'" if run_ref else "stored yet"))
        if len(rows) > 1:
            raise StoreError(f"run id '{run_ref}' is ambiguous: give more characters")
        return rows[0][0]

    def review_runs(self, limit: int = 100) -> list[str]:
        """The ids of the latest `limit` editors' runs (no compare/check probe), newest first."""
        with self.reader() as con:
            rows = con.execute(
                "SELECT run_id FROM runs WHERE purpose = 'review' ORDER BY started_at DESC, run_id LIMIT ?", [limit]
            ).fetchall()
        return [row[0] for row in rows]

    def load_run(self, run_id: str) -> StoredRun:
        """A stored run with its cards and current verdicts (overrides applied), for tally and render.

        Journaled writes not yet folded are included (see _run_reader), so the chair and the page never miss
        an answer a reader kept from the database. Raises StoreError when there is no such run.
        """
        with self._run_reader(run_id) as con:
            found = named_rows(
                con.execute(
                    """SELECT run_id, title, model, mode, status, started_at, finished_at,
                                                     run_file FROM runs WHERE run_id = ?""",
                    [run_id],
                )
            )
            if not found:
                raise StoreError(f"{self.path}: no run '{run_id}'")
            pair_rows = named_rows(
                con.execute(
                    """
                SELECT p.left_tool_id, l.card_json AS left_json, l.flags_json AS left_flags,
                       p.right_tool_id, r.card_json AS right_json, r.flags_json AS right_flags
                FROM pairs p JOIN tools l ON l.tool_id = p.left_tool_id JOIN tools r ON r.tool_id = p.right_tool_id
                WHERE p.run_id = ? ORDER BY p.pair_index""",
                    [run_id],
                )
            )
            item_rows = named_rows(
                con.execute(
                    current_verdicts("i.run_id = $run") + " ORDER BY i.pair_index, i.tool_id, i.persona_id",
                    {"run": run_id},
                )
            )
            consensus = read_consensus(con, run_id)
            texts = {
                row["content_hash"]: (row["name"], row["text"])
                for row in named_rows(
                    con.execute(
                        "SELECT content_hash, name, text FROM prompt_versions WHERE content_hash IN (SELECT unnest(?))",
                        [sorted({row["persona_hash"] for row in item_rows if row["persona_hash"]})],
                    )
                )
            }
        stored = StoredRun(**found[0], pairs=[], tool_ids=[], consensus=consensus)
        for row in pair_rows:
            left = ToolCard.model_validate_json(row["left_json"])
            left.flags = json.loads(row["left_flags"])
            right = ToolCard.model_validate_json(row["right_json"])
            right.flags = json.loads(row["right_flags"])
            stored.pairs.append((left, right))
            stored.tool_ids.append((row["left_tool_id"], row["right_tool_id"]))
        for row in item_rows:
            if row["persona_id"] not in stored.persona_ids:
                stored.persona_ids.append(row["persona_id"])
            if row["verdict_id"] is None:  # this item has no stored verdict yet
                continue
            stored.verdicts[(row["pair_index"], row["tool_id"], row["persona_id"])] = _stored_verdict(row)
            stored.persona_hashes[row["persona_id"]] = row["persona_hash"]
        stored.persona_texts = dict(texts[h] for h in stored.persona_hashes.values() if h in texts)
        return stored

    @contextlib.contextmanager
    def _run_reader(self, run_id: str) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-only connection that also sees the run journal's pending records.

        Usually the journal is empty (or folds at once) and this is reader(). While another process holds the
        file, it is an in-memory copy of this run's rows with the journal folded in (a fraction of a second).
        """
        records = self.journal.pending()
        if not records or self.fold_journal(wait_s=0):
            with self.reader() as con:
                yield con
            return
        self._current_schema()  # a damaged file is one line here too, not a traceback from the copy
        con = duckdb.connect(":memory:")
        try:
            try:
                migrate(con)
                with in_process_lock(self.path):  # ATTACH opens the file: not while this process has it open
                    copy_run(con, self.path, run_id, records)
                    copy_versions(con, self.path, run_id)
                fold(con, records)
            except duckdb.Error as error:
                raise unusable(self.path, error, "read") from error
            yield con
        finally:
            con.close()

    def answered_verdicts(self, cache_keys: list[str]) -> dict[str, AnsweredVerdict]:
        """The current (latest generation) stored or journaled answer for each of `cache_keys` that has one."""
        if not cache_keys:
            return {}
        with self.reader() as con:
            return self._answered_verdicts(con, cache_keys)

    def _answered_verdicts(self, con: duckdb.DuckDBPyConnection, cache_keys: list[str]) -> dict[str, AnsweredVerdict]:
        if not cache_keys:
            return {}
        # The journal before the database: a fold between the two reads then shows an answer twice, never not at all.
        journaled = journaled_answers(self.journal.pending(), cache_keys)
        stored = records(
            con.execute(
                """
            SELECT cache_key, verdict, confidence, headline, review, valid, prompt_tokens, completion_tokens,
                   verdict_probability
            FROM verdicts WHERE cache_key IN (SELECT unnest(?))
            QUALIFY generation = max(generation) OVER (PARTITION BY cache_key)""",
                [cache_keys],
            ),
            AnsweredVerdict,
        )
        # An answer still in the run journal is newer than any stored one: a rerun must not pay for it again.
        return {answer.cache_key: answer for answer in stored} | journaled
