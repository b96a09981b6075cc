"""Community votes: append-only events through the journal; the tally is derived from each reader's latest."""

from __future__ import annotations

from panel.store.connection import LOCK_RETRY_S, Database, records
from panel.store.records import VoteEvent, VoteTarget
from panel.store.vote_writes import journaled_votes, votes_records


class VoteStore(Database):
    """Readers' ship/skip votes on the pairs of editors' runs."""

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
            stored = records(
                con.execute("""
                SELECT run_id, tool_id, voter_token AS voter_id, verdict, created_at FROM votes
                QUALIFY row_number() OVER (PARTITION BY run_id, tool_id, voter_token
                                           ORDER BY created_at DESC, vote_id DESC) = 1
                ORDER BY created_at, vote_id"""),
                VoteEvent,
            )
        # Replayed in time order a vote seen twice changes nothing; a reader's later vote still wins.
        return sorted(dict.fromkeys(stored + journaled), key=lambda v: v.created_at)

    def vote_targets(self) -> list[VoteTarget]:
        """Every pair of an editor's run (not a maintainer's probe) with its run title and tool names, newest first."""
        with self.reader() as con:
            return records(
                con.execute("""
                SELECT r.run_id, r.title AS run_title, p.pair_index, p.left_tool_id, l.name AS left_name,
                       p.right_tool_id, t.name AS right_name
                FROM pairs p JOIN runs r USING (run_id)
                JOIN tools l ON l.tool_id = p.left_tool_id JOIN tools t ON t.tool_id = p.right_tool_id
                WHERE r.purpose = 'review'
                ORDER BY r.started_at DESC, r.run_id, p.pair_index"""),
                VoteTarget,
            )
