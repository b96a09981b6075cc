"""The Store: every read and write of the panel database (all SQL lives in this package)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb

from panel.ask import Answer, VerdictJob
from panel.cards import RunSpec, ToolCard
from panel.config import Settings
from panel.errors import DatabaseBusy, StoreError
from panel.store.migrations import migrate, pending
from panel.personas import Persona, PromptTemplates
from panel.store.connection import LOCK_RETRY_S, connect, unusable
from panel.store.journal import Journal, JournalRecord
from panel.store.run_writes import (answers_record, copy_run, fold, items_record, journaled_answers, run_record,
                                    status_record)
from panel.store.records import (AnsweredVerdict, GoldLabel, Override, PromptVersion, StoredRun, StoredVerdict,
                                  VoteEvent, VoteTarget)
from panel.store.vote_writes import journaled_votes, votes_records
from panel.store.schema import check_schema, insert_probe_rows, read_schema, refuse_missing_data

# Opening the database for writing tries this long before it settles for reading the schema version.
OPEN_WAIT_S = 1.0


class Store:
    """The panel database: open it with Store(path); every read and write goes through here."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock_file: Any = None
        self._migrated = False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._open_for_writing()

    @classmethod
    def existing(cls, path: str | Path) -> "Store":
        """Open a database that must already exist (commands that only read never create an empty one)."""
        if not Path(path).is_file():
            raise StoreError(f"{path}: no database here yet: run `panel review` first, or give --db")
        return cls(path)

    # --- connections -------------------------------------------------------------------------
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
            raise StoreError(f"{self.path}: another panel run is writing this database ({holder}); "
                             "wait for it to finish or use --db") from None
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

    # --- writes --------------------------------------------------------------------------------
    def begin_run(self, run_id: str, spec: RunSpec, settings: Settings, personas: list[Persona],
                  templates: PromptTemplates, jobs: list[VerdictJob], purpose: str = "review",
                  wait_s: float = LOCK_RETRY_S, rehearse: bool = False) -> None:
        """Record a run, its tools, pairs, prompt versions and planned items (idempotent; through the journal).

        A run first recorded as a review stays one when a maintainer's compare or check reuses it.
        `rehearse` stores nothing: these writes, a probe row in every table and the read that storing answers
        makes run in a transaction that is rolled back, so a damaged file raises StoreError before a run's
        first request rather than in its writer thread (a few tens of ms; no commit, no checkpoint).
        """
        record = run_record(run_id, spec, settings, personas, templates, jobs, purpose)
        if rehearse:
            try:
                with self._rolled_back(wait_s=OPEN_WAIT_S) as con:
                    insert_probe_rows(con)
                    fold(con, [record])
                    # Committing the run's status rewrites the runs table (one row per run: cheap to read whole).
                    con.execute("SELECT max(hash(COLUMNS(*))) FROM runs").fetchall()
                    con.execute("""SELECT cache_key, max(generation) FROM verdicts
                                   WHERE cache_key IN (SELECT unnest(?)) GROUP BY cache_key""",
                                [[job.cache_key for job in jobs]]).fetchall()
            except DatabaseBusy:  # a reader holds the file: the run's writes wait in the journal for it
                self._current_schema()  # but a damaged one is refused before the first request all the same
            return
        self._write_through_journal(record, wait_s)

    def add_run_items(self, run_id: str, jobs: list[VerdictJob], prompt_kind: str,
                      wait_s: float = LOCK_RETRY_S) -> None:
        """Record extra items of a stored run (the chair's) with their prompt versions (idempotent; through the journal)."""
        self._write_through_journal(items_record(run_id, jobs, prompt_kind), wait_s)

    def answered_keys(self, cache_keys: list[str]) -> set[str]:
        """The cache keys whose current verdict is valid (a rerun skips them; a failed --refresh is asked again)."""
        return {key for key, answer in self.answered_verdicts(cache_keys).items() if answer.valid}

    def save_answers(self, run_id: str, answers: list[Answer], settings: Settings,
                     wait_s: float = LOCK_RETRY_S, finish_status: str | None = None, fold: bool = True) -> None:
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

    def add_override(self, run_id: str, tool_id: str, persona_id: str, editor: str, verdict: str | None = None,
                     review: str | None = None, note: str | None = None, revert: bool = False,
                     pair_index: int | None = None, headline: str | None = None) -> Override:
        """Store an editor's change beside the model's verdict; what is not given carries over from the last one.

        The override belongs to pair `pair_index` (0-based); None finds it when the tool has this persona's
        item in one pair only. `revert` stores a row that changes nothing, so the model's answer shows again
        and the history stays. Raises StoreError when the run has no such item, or when the pair is ambiguous.
        """
        with self.transaction() as con:
            pairs = [row[0] for row in con.execute(
                """SELECT pair_index FROM run_items WHERE run_id = ? AND tool_id = ? AND persona_id = ?
                   AND (? IS NULL OR pair_index = ?) ORDER BY pair_index""",
                [run_id, tool_id, persona_id, pair_index, pair_index]).fetchall()]
            if not pairs:
                where = f" in pair {pair_index + 1}" if pair_index is not None else ""
                raise StoreError(f"run {run_id} has no verdict by '{persona_id}' on tool {tool_id[:12]}{where}")
            if len(pairs) > 1:
                raise StoreError(f"tool {tool_id[:12]} is in pairs {', '.join(str(p + 1) for p in pairs)} "
                                 f"of run {run_id}: say which pair")
            pair_index = pairs[0]
            if revert:
                verdict = review = headline = None
            else:
                # The row in force for this item: its own pair's, or an old row without a pair.
                last = con.execute("""SELECT verdict, review, headline FROM overrides
                                      WHERE run_id = ? AND tool_id = ? AND persona_id = ?
                                      AND (pair_index IS NULL OR pair_index = ?)
                                      ORDER BY created_at DESC, override_id DESC LIMIT 1""",
                                   [run_id, tool_id, persona_id, pair_index]).fetchall()
                if last:
                    verdict = verdict if verdict is not None else last[0][0]
                    review = review if review is not None else last[0][1]
                    headline = headline if headline is not None else last[0][2]
            override_id = con.execute("""
                INSERT INTO overrides (run_id, pair_index, tool_id, persona_id, verdict, review, headline, editor,
                                       note, created_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING override_id""",
                [run_id, pair_index, tool_id, persona_id, verdict, review, headline, editor, note,
                 datetime.now(timezone.utc)]).fetchall()[0][0]
        return next(o for o in self.overrides(run_id) if o.override_id == override_id)

    def finish_run(self, run_id: str, status: str, wait_s: float = LOCK_RETRY_S) -> None:
        """Mark a run finished, incomplete (some verdicts missing) or stopped (budget, Ctrl-C), through the journal."""
        self._write_through_journal(status_record(run_id, status), wait_s)

    # --- community votes: append-only events, the tally is derived -------------------------------
    def journal_votes(self, votes: list[VoteEvent]) -> None:
        """Make vote events durable in the journal (one fsync) for a later fold; raise StoreError if the disk refuses.

        What `panel serve` acknowledges a vote on (vote_writes.py); nothing is ever updated, so no vote can be
        overwritten.
        """
        if votes:
            self.journal.append(*votes_records(votes))

    def add_votes(self, votes: list[VoteEvent], wait_s: float = LOCK_RETRY_S) -> None:
        """Append vote events through the journal and fold them into the database if it is free within `wait_s`."""
        self.journal_votes(votes)
        self.fold_journal(wait_s)

    def current_votes(self) -> list[VoteEvent]:
        """Each reader's latest vote per (run, tool), journaled ones included: the events the community tally counts."""
        # The journal before the database: a fold between the two reads then shows a vote twice, never not at all.
        journaled = journaled_votes(self.journal.pending())
        with self.reader() as con:
            rows = con.execute("""
                SELECT run_id, tool_id, voter_token, verdict, created_at FROM votes
                QUALIFY row_number() OVER (PARTITION BY run_id, tool_id, voter_token
                                           ORDER BY created_at DESC, vote_id DESC) = 1
                ORDER BY created_at, vote_id""").fetchall()
        # Replayed in time order a vote seen twice changes nothing; a reader's later vote still wins.
        return sorted(dict.fromkeys([VoteEvent(*row) for row in rows] + journaled), key=lambda v: v.created_at)

    def vote_targets(self) -> list[VoteTarget]:
        """Every pair of an editor's run (not a maintainer's probe) with its run title and tool names, newest first."""
        with self.reader() as con:
            rows = con.execute("""
                SELECT r.run_id, r.title, p.pair_index, p.left_tool_id, l.name, p.right_tool_id, t.name
                FROM pairs p JOIN runs r USING (run_id)
                JOIN tools l ON l.tool_id = p.left_tool_id JOIN tools t ON t.tool_id = p.right_tool_id
                WHERE r.purpose = 'review'
                ORDER BY r.started_at DESC, r.run_id, p.pair_index""").fetchall()
        return [VoteTarget(*row) for row in rows]

    # --- reads ---------------------------------------------------------------------------------
    def resolve_run_id(self, run_ref: str | None) -> str:
        """A full run id from a prefix, or the latest editor's run (not a compare/check probe) when None."""
        with self.reader() as con:
            if run_ref is None:
                rows = con.execute("SELECT run_id FROM runs WHERE purpose = 'review' "
                                   "ORDER BY started_at DESC LIMIT 1").fetchall()
            else:
                rows = con.execute("SELECT run_id FROM runs WHERE starts_with(run_id, ?)", [run_ref]).fetchall()
        if not rows:
            raise StoreError(f"{self.path}: no run " + (f"matching '{run_ref}'" if run_ref else "stored yet"))
        if len(rows) > 1:
            raise StoreError(f"run id '{run_ref}' is ambiguous: give more characters")
        return rows[0][0]

    def overrides(self, run_id: str) -> list[Override]:
        """Every editor override of a run, oldest first, with the model's own verdict and quote beside it."""
        with self.reader() as con:
            rows = con.execute("""
                WITH model AS (
                    SELECT i.pair_index, i.tool_id, i.persona_id, v.verdict, v.review,
                           i.pair_index = min(i.pair_index) OVER (PARTITION BY i.tool_id, i.persona_id) AS first_pair
                    FROM run_items i JOIN verdicts v ON v.cache_key = i.cache_key
                    WHERE i.run_id = ?
                    QUALIFY row_number() OVER (PARTITION BY i.pair_index, i.tool_id, i.persona_id
                                               ORDER BY v.generation DESC) = 1)
                SELECT o.override_id, o.run_id, o.tool_id, t.name, o.persona_id, o.verdict, o.review, o.editor,
                       o.note, o.created_at, m.verdict, m.review, o.pair_index, o.headline
                FROM overrides o JOIN tools t ON t.tool_id = o.tool_id
                LEFT JOIN model m ON m.tool_id = o.tool_id AND m.persona_id = o.persona_id
                                 AND (m.pair_index = o.pair_index OR (o.pair_index IS NULL AND m.first_pair))
                WHERE o.run_id = ? ORDER BY o.created_at, o.override_id""", [run_id, run_id]).fetchall()
        return [Override(*row) for row in rows]

    def load_run(self, run_id: str) -> StoredRun:
        """A stored run with its cards and current verdicts (overrides applied), for tally and render.

        Journaled writes not yet folded are included (see _run_reader), so the chair and the page never miss
        an answer a reader kept from the database.
        """
        with self._run_reader(run_id) as con:
            run = con.execute("""SELECT run_id, title, model, mode, status, started_at, finished_at, run_file
                                 FROM runs WHERE run_id = ?""", [run_id]).fetchall()
            if not run:
                raise StoreError(f"{self.path}: no run '{run_id}'")
            pair_rows = con.execute("""
                SELECT p.left_tool_id, l.card_json, l.flags_json, p.right_tool_id, r.card_json, r.flags_json
                FROM pairs p JOIN tools l ON l.tool_id = p.left_tool_id JOIN tools r ON r.tool_id = p.right_tool_id
                WHERE p.run_id = ? ORDER BY p.pair_index""", [run_id]).fetchall()
            verdict_rows = con.execute("""
                WITH item_override AS (  -- per item, the latest of its pair's rows and old rows without a pair
                    SELECT i.pair_index, i.tool_id, i.persona_id, o.verdict, o.review, o.headline, o.editor,
                           o.created_at
                    FROM run_items i
                    JOIN overrides o ON o.run_id = i.run_id AND o.tool_id = i.tool_id AND o.persona_id = i.persona_id
                                    AND (o.pair_index IS NULL OR o.pair_index = i.pair_index)
                    WHERE i.run_id = ?
                    QUALIFY row_number() OVER (PARTITION BY i.pair_index, i.tool_id, i.persona_id
                                               ORDER BY o.created_at DESC, o.override_id DESC) = 1)
                SELECT i.pair_index, i.tool_id, i.persona_id, v.verdict, v.confidence, v.headline, v.review,
                       v.key_points_json, v.valid, v.attempt_count, v.model, v.persona_hash, v.flags_json,
                       v.created_at, o.verdict, o.review, o.headline, o.editor, o.created_at
                FROM run_items i
                LEFT JOIN verdicts v ON v.cache_key = i.cache_key  -- an item never answered still names its persona
                LEFT JOIN item_override o
                       ON o.pair_index = i.pair_index AND o.tool_id = i.tool_id AND o.persona_id = i.persona_id
                WHERE i.run_id = ?
                QUALIFY v.cache_key IS NULL OR v.generation = max(v.generation) OVER (PARTITION BY v.cache_key)
                ORDER BY i.pair_index, i.tool_id, i.persona_id""",
                [run_id, run_id]).fetchall()
            texts = {row[0]: (row[1], row[2]) for row in con.execute(
                "SELECT content_hash, name, text FROM prompt_versions WHERE content_hash IN (SELECT unnest(?))",
                [sorted({row[11] for row in verdict_rows if row[11]})]).fetchall()}
        stored = StoredRun(*run[0][:7], pairs=[], tool_ids=[], run_file=run[0][7])
        for left_id, left_json, left_flags, right_id, right_json, right_flags in pair_rows:
            left = ToolCard.model_validate_json(left_json)
            left.flags = json.loads(left_flags)
            right = ToolCard.model_validate_json(right_json)
            right.flags = json.loads(right_flags)
            stored.pairs.append((left, right))
            stored.tool_ids.append((left_id, right_id))
        for row in verdict_rows:
            (pair_index, tool_id, persona_id, verdict, confidence, headline, review, key_points, valid,
             attempts, model, persona_hash, flags, created_at, o_verdict, o_review, o_headline, o_editor, o_at) = row
            if persona_id not in stored.persona_ids:
                stored.persona_ids.append(persona_id)
            if attempts is None:  # this item has no stored verdict yet
                continue
            # a revert row changes nothing
            changed = o_verdict is not None or o_review is not None or o_headline is not None
            shown = o_verdict or verdict
            # The model's headline argued for the model's verdict (or pick): a changed one drops it.
            shown_headline = o_headline or (headline if shown == verdict else None)
            stored.verdicts[(pair_index, tool_id, persona_id)] = StoredVerdict(
                persona_id, tool_id, shown, confidence, shown_headline, o_review or review,
                json.loads(key_points) if key_points else [], valid, attempts, model, persona_hash,
                json.loads(flags), created_at, model_verdict=verdict, model_review=review,
                override_editor=o_editor if changed else None, override_at=o_at if changed else None)
            stored.persona_hashes[persona_id] = persona_hash
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
                copy_run(con, self.path, run_id, records)
                fold(con, records)
            except duckdb.Error as error:
                raise unusable(self.path, error, "read") from error
            yield con
        finally:
            con.close()

    # --- maintainers: prompt versions, answers by cache key, gold labels --------------------------
    def prompt_versions(self, kind: str | None = None) -> list[PromptVersion]:
        """Every stored persona/templates version with first and last use and valid verdicts produced."""
        with self.reader() as con:
            rows = con.execute("""
                WITH used AS (
                    SELECT false AS is_templates, persona_hash AS content_hash, min(created_at) AS first_used,
                           max(created_at) AS last_used, count(*) FILTER (WHERE valid) AS n
                    FROM verdicts GROUP BY persona_hash
                    UNION ALL
                    SELECT true, template_hash, min(created_at), max(created_at), count(*) FILTER (WHERE valid)
                    FROM verdicts GROUP BY template_hash)
                SELECT p.content_hash, p.kind, p.name, p.text, p.first_seen_at, u.first_used, u.last_used,
                       coalesce(u.n, 0)
                FROM prompt_versions p
                LEFT JOIN used u ON u.content_hash = p.content_hash AND u.is_templates = (p.kind = 'templates')
                WHERE ? IS NULL OR p.kind = ?
                ORDER BY p.kind, p.name, coalesce(u.first_used, p.first_seen_at)""", [kind, kind]).fetchall()
        return [PromptVersion(*row) for row in rows]

    def answered_verdicts(self, cache_keys: list[str]) -> dict[str, AnsweredVerdict]:
        """The current (latest generation) stored or journaled answer for each of `cache_keys` that has one."""
        if not cache_keys:
            return {}
        # The journal before the database: a fold between the two reads then shows an answer twice, never not at all.
        journaled = journaled_answers(self.journal.pending(), cache_keys)
        with self.reader() as con:
            rows = con.execute("""
                SELECT cache_key, verdict, confidence, headline, review, valid, prompt_tokens, completion_tokens
                FROM verdicts WHERE cache_key IN (SELECT unnest(?))
                QUALIFY generation = max(generation) OVER (PARTITION BY cache_key)""", [cache_keys]).fetchall()
        # An answer still in the run journal is newer than any stored one: a rerun must not pay for it again.
        return {row[0]: AnsweredVerdict(*row) for row in rows} | journaled

    def add_labels(self, labels: list[GoldLabel]) -> int:
        """Store gold labels, skipping exact repeats (a re-import adds nothing); return how many were new."""
        added = 0
        now = datetime.now(timezone.utc)
        with self.transaction() as con:
            for label in labels:
                repeat = con.execute("""
                    SELECT count(*) FROM labels WHERE tool_name = ? AND persona_id IS NOT DISTINCT FROM ?
                    AND verdict = ? AND source = ? AND review IS NOT DISTINCT FROM ?""",
                    [label.tool_name, label.persona_id, label.verdict, label.source, label.review]).fetchall()[0][0]
                if not repeat:
                    con.execute("""INSERT INTO labels (tool_name, persona_id, verdict, source, review, created_at)
                                   VALUES (?, ?, ?, ?, ?, ?)""",
                                [label.tool_name, label.persona_id, label.verdict, label.source, label.review,
                                 label.created_at or now])
                    added += 1
        return added

    def gold_labels(self) -> list[GoldLabel]:
        """The label in force per (tool name, persona or overall): the latest of labels and editor overrides."""
        with self.reader() as con:
            rows = con.execute("""
                SELECT tool_name, persona_id, verdict, source, review, created_at FROM (
                    SELECT tool_name, persona_id, verdict, source, review, created_at, label_id AS seq FROM labels
                    UNION ALL
                    SELECT t.name, o.persona_id, o.verdict, 'override by ' || o.editor, o.review, o.created_at,
                           o.override_id
                    FROM (SELECT * FROM overrides  -- an override's latest row is in force; NULL verdict: reverted
                          QUALIFY row_number() OVER (PARTITION BY run_id, tool_id, persona_id
                                                     ORDER BY created_at DESC, override_id DESC) = 1) o
                    -- only ship/skip are labels: not a revert (NULL), nor the chair's pick of a tool
                    JOIN tools t ON t.tool_id = o.tool_id WHERE o.verdict IN ('ship', 'skip'))
                QUALIFY row_number() OVER (PARTITION BY tool_name, persona_id
                                           ORDER BY created_at DESC, seq DESC) = 1
                ORDER BY tool_name, persona_id NULLS FIRST""").fetchall()
        return [GoldLabel(*row) for row in rows]
