"""Approvals and publications: the desk's editorial record of a pair, append-only (the latest of each counts)."""

from __future__ import annotations

from datetime import datetime, timezone

from panel.store.connection import Database, records
from panel.store.records import Approval, Publication


class PublishingStore(Database):
    """Who approved which pair in which state, and who published it where; rows are only ever added."""

    def add_approval(self, run_id: str, pair_index: int, state_hash: str, editor: str) -> Approval:
        """Record an approval of pair `pair_index` (0-based) as it is in `state_hash`; return it."""
        with self.transaction() as con:
            row = con.execute(
                """INSERT INTO approvals (run_id, pair_index, state_hash, editor, approved_at)
                   VALUES (?, ?, ?, ?, ?) RETURNING approval_id, approved_at""",
                [run_id, pair_index, state_hash, editor, datetime.now(timezone.utc)],
            ).fetchall()[0]
        return Approval(row[0], run_id, pair_index, state_hash, editor, row[1])

    def add_publication(
        self,
        run_id: str,
        pair_index: int,
        state_hash: str,
        editor: str,
        html_path: str,
        markdown_path: str,
        html_sha256: str,
    ) -> Publication:
        """Record that the pair's page in `state_hash` was written to these files; return the record."""
        with self.transaction() as con:
            row = con.execute(
                """INSERT INTO publications (run_id, pair_index, state_hash, editor, published_at, html_path,
                                             markdown_path, html_sha256)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING publication_id, published_at""",
                [
                    run_id,
                    pair_index,
                    state_hash,
                    editor,
                    datetime.now(timezone.utc),
                    html_path,
                    markdown_path,
                    html_sha256,
                ],
            ).fetchall()[0]
        return Publication(
            row[0], run_id, pair_index, state_hash, editor, row[1], html_path, markdown_path, html_sha256
        )

    def approvals(self, run_id: str) -> list[Approval]:
        """Every approval of a run's pairs, oldest first."""
        with self.reader() as con:
            return records(
                con.execute(
                    """SELECT approval_id, run_id, pair_index, state_hash, editor, approved_at FROM approvals
                       WHERE run_id = ? ORDER BY approved_at, approval_id""",
                    [run_id],
                ),
                Approval,
            )

    def publications(self, run_id: str) -> list[Publication]:
        """Every publication of a run's pairs, oldest first (a republish adds a row; none is replaced)."""
        with self.reader() as con:
            return records(
                con.execute(
                    """SELECT publication_id, run_id, pair_index, state_hash, editor, published_at, html_path,
                              markdown_path, html_sha256 FROM publications
                       WHERE run_id = ? ORDER BY published_at, publication_id""",
                    [run_id],
                ),
                Publication,
            )
