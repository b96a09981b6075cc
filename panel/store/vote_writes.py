"""Community votes as journal records: built by `panel serve`, folded into the `votes` table, read before they fold.

`panel serve` answers a vote once it is in the journal beside the database (journal.py), not once DuckDB
has committed it: opening, committing and checkpointing the file costs ~50 ms a batch, and another
process reading the file would make it wait. One `votes` record per run per batch, so `journal_folds`
names the run as for every other record; folding is idempotent per record like the run's kinds
(run_writes.fold skips a record whose id is already in `journal_folds`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime, timezone

import duckdb

from panel.store.journal import JournalRecord
from panel.store.records import VoteEvent

VOTE_COLUMNS = ["run_id", "tool_id", "voter_token", "verdict", "created_at"]


def votes_records(votes: Iterable[VoteEvent]) -> list[JournalRecord]:
    """A batch of vote events as journal records, one per run, each holding that run's votes in order."""
    by_run: dict[str, list[list[object]]] = {}
    for vote in votes:
        by_run.setdefault(vote.run_id, []).append(
            [vote.run_id, vote.tool_id, vote.voter_id, vote.verdict, vote.created_at]
        )
    now = datetime.now(timezone.utc)
    return [
        {"id": uuid.uuid4().hex, "kind": "votes", "run_id": run_id, "written_at": now, "votes": rows}
        for run_id, rows in by_run.items()
    ]


def fold_votes(con: duckdb.DuckDBPyConnection, record: JournalRecord) -> None:
    """Append a record's vote events to `votes` (inside the caller's transaction)."""
    rows = record["votes"]
    if rows:
        con.execute(
            f"INSERT INTO votes ({', '.join(VOTE_COLUMNS)}) SELECT {', '.join(['unnest(?)'] * len(VOTE_COLUMNS))}",
            [list(column) for column in zip(*rows)],
        )


def journaled_votes(records: list[JournalRecord]) -> list[VoteEvent]:
    """The vote events waiting in the journal, oldest first."""
    return [
        VoteEvent(run_id, tool_id, voter, verdict, datetime.fromisoformat(created_at))
        for record in records
        if record["kind"] == "votes"
        for run_id, tool_id, voter, verdict, created_at in record["votes"]
    ]
