"""Maintainers' reads and writes: prompt versions with their use, and gold labels."""

from __future__ import annotations

from datetime import datetime, timezone

from panel.store.connection import Database, records
from panel.store.records import GoldLabel, PromptVersion
from panel.store.views import GOLD_LABELS


class MaintainerStore(Database):
    """Prompt versions (panel personas, compare) and gold labels (panel labels, check)."""

    def prompt_versions(self, kind: str | None = None) -> list[PromptVersion]:
        """Every stored persona/templates version with first and last use, valid verdicts produced, and when a review
        run last used it (asked or reused: a probe's answers count once a review adopts them)."""
        with self.reader() as con:
            return records(
                con.execute(
                    """
                WITH used AS (
                    SELECT false AS is_templates, persona_hash AS content_hash, min(created_at) AS first_used,
                           max(created_at) AS last_used, count(*) FILTER (WHERE valid) AS n
                    FROM verdicts GROUP BY persona_hash
                    UNION ALL
                    SELECT true, template_hash, min(created_at), max(created_at), count(*) FILTER (WHERE valid)
                    FROM verdicts GROUP BY template_hash
                ), review_use AS (  -- the versions of the answers each review run uses (asked or adopted)
                    SELECT DISTINCT r.started_at, v.persona_hash, v.template_hash
                    FROM run_items i JOIN runs r ON r.run_id = i.run_id AND r.purpose = 'review'
                    JOIN verdicts v ON v.cache_key = i.cache_key AND v.valid
                ), reviewed AS (
                    SELECT false AS is_templates, persona_hash AS content_hash, max(started_at) AS last_reviewed
                    FROM review_use GROUP BY persona_hash
                    UNION ALL
                    SELECT true, template_hash, max(started_at) FROM review_use GROUP BY template_hash)
                SELECT p.content_hash, p.kind, p.name, p.text, p.first_seen_at, u.first_used AS first_used_at,
                       u.last_used AS last_used_at, coalesce(u.n, 0) AS verdict_count,
                       rv.last_reviewed AS last_reviewed_at
                FROM prompt_versions p
                LEFT JOIN used u ON u.content_hash = p.content_hash AND u.is_templates = (p.kind = 'templates')
                LEFT JOIN reviewed rv
                       ON rv.content_hash = p.content_hash AND rv.is_templates = (p.kind = 'templates')
                WHERE ? IS NULL OR p.kind = ?
                ORDER BY p.kind, p.name, coalesce(u.first_used, p.first_seen_at)""",
                    [kind, kind],
                ),
                PromptVersion,
            )

    def add_labels(self, labels: list[GoldLabel]) -> int:
        """Store gold labels, skipping exact repeats (a re-import adds nothing); return how many were new."""
        added = 0
        now = datetime.now(timezone.utc)
        with self.transaction() as con:
            for label in labels:
                repeat = con.execute(
                    """
                    SELECT count(*) FROM labels WHERE tool_name = ? AND persona_id IS NOT DISTINCT FROM ?
                    AND verdict = ? AND source = ? AND review IS NOT DISTINCT FROM ?""",
                    [label.tool_name, label.persona_id, label.verdict, label.source, label.review],
                ).fetchall()[0][0]
                if not repeat:
                    con.execute(
                        """INSERT INTO labels (tool_name, persona_id, verdict, source, review, created_at)
                                   VALUES (?, ?, ?, ?, ?, ?)""",
                        [
                            label.tool_name,
                            label.persona_id,
                            label.verdict,
                            label.source,
                            label.review,
                            label.created_at or now,
                        ],
                    )
                    added += 1
        return added

    def gold_labels(self) -> list[GoldLabel]:
        """The label in force per (tool name, persona or overall): the latest of labels and editor overrides."""
        with self.reader() as con:
            return records(con.execute(GOLD_LABELS + " ORDER BY tool_name, persona_id NULLS FIRST"), GoldLabel)
