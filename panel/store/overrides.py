"""Overrides: an editor's change to a verdict, its quote or headline, stored beside the model's answer."""

from __future__ import annotations

from datetime import datetime, timezone

from panel.store.connection import Database, records
from panel.store.records import Override


class OverrideStore(Database):
    """Editors' overrides: append-only rows, the latest per run item in force (views.current_verdicts)."""

    def add_override(
        self,
        run_id: str,
        tool_id: str,
        persona_id: str,
        editor: str,
        *,
        pair_index: int,
        verdict: str | None = None,
        review: str | None = None,
        note: str | None = None,
        revert: bool = False,
        headline: str | None = None,
    ) -> Override:
        """Store an editor's change beside the model's verdict; what is not given carries over from the last one.

        The override belongs to pair `pair_index` (0-based). The item and the values are not checked here:
        panel.overrides.apply_override holds the rules and calls this with what passed them. `revert` stores a
        row that changes nothing, so the model's answer shows again and the history stays.
        """
        with self.transaction() as con:
            if revert:
                verdict = review = headline = None
            else:
                # The row in force for this item: its own pair's, or an old row without a pair.
                last = con.execute(
                    """SELECT verdict, review, headline FROM overrides
                                      WHERE run_id = ? AND tool_id = ? AND persona_id = ?
                                      AND (pair_index IS NULL OR pair_index = ?)
                                      ORDER BY created_at DESC, override_id DESC LIMIT 1""",
                    [run_id, tool_id, persona_id, pair_index],
                ).fetchall()
                if last:
                    verdict = verdict if verdict is not None else last[0][0]
                    review = review if review is not None else last[0][1]
                    headline = headline if headline is not None else last[0][2]
            override_id = con.execute(
                """
                INSERT INTO overrides (run_id, pair_index, tool_id, persona_id, verdict, review, headline, editor,
                                       note, created_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING override_id""",
                [
                    run_id,
                    pair_index,
                    tool_id,
                    persona_id,
                    verdict,
                    review,
                    headline,
                    editor,
                    note,
                    datetime.now(timezone.utc),
                ],
            ).fetchall()[0][0]
        return next(o for o in self.overrides(run_id) if o.override_id == override_id)

    def overrides(self, run_id: str) -> list[Override]:
        """Every editor override of a run, oldest first, with the model's own verdict and quote beside it."""
        with self.reader() as con:
            return records(
                con.execute(
                    """
                WITH model AS (
                    SELECT i.pair_index, i.tool_id, i.persona_id, v.verdict, v.review,
                           i.pair_index = min(i.pair_index) OVER (PARTITION BY i.tool_id, i.persona_id) AS first_pair
                    FROM run_items i JOIN verdicts v ON v.cache_key = i.cache_key
                    WHERE i.run_id = ?
                    QUALIFY row_number() OVER (PARTITION BY i.pair_index, i.tool_id, i.persona_id
                                               ORDER BY v.generation DESC) = 1)
                SELECT o.override_id, o.run_id, o.tool_id, t.name AS tool_name, o.persona_id, o.verdict, o.review,
                       o.editor, o.note, o.created_at, m.verdict AS model_verdict, m.review AS model_review,
                       o.pair_index, o.headline
                FROM overrides o JOIN tools t ON t.tool_id = o.tool_id
                LEFT JOIN model m ON m.tool_id = o.tool_id AND m.persona_id = o.persona_id
                                 AND (m.pair_index = o.pair_index OR (o.pair_index IS NULL AND m.first_pair))
                WHERE o.run_id = ? ORDER BY o.created_at, o.override_id""",
                    [run_id, run_id],
                ),
                Override,
            )
