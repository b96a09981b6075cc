"""Batches: each batch panel submitted (or exported for an offline engine), what it covers, and its stored lines.

A batch is recorded, with every request it covers (batch_items), before its file is uploaded or the batch is
created, under panel's own `local_id`; the endpoint's id is added once create answers. Each result line is
stored as a verdict (valid or not) with its one attempt, and as a batch_lines row naming that verdict, in the same
transaction, and a line already in batch_lines is skipped: collecting twice stores nothing twice. These writes go
straight to DuckDB (each a short transaction that folds the run journal first), not through the journal.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel

from panel.answer_kinds import kind_of
from panel.answers import Attempt
from panel.cost import Prices
from panel.errors import StoreError
from panel.store.connection import Database, records
from panel.store.run_writes import insert_rows, insert_verdicts

# States in which the endpoint may still answer: the batch's keys are not asked anywhere else meanwhile.
LIVE_STATES = ("pending", "validating", "in_progress", "finalizing", "cancelling")
ENDED_STATES = ("completed", "failed", "expired", "cancelled")
BATCH_COLUMNS = [
    "local_id",
    "batch_id",
    "plan_hash",
    "purpose",
    "run_ids_json",
    "endpoint",
    "base_url",
    "model",
    "mode",
    "sampling_json",
    "price_input",
    "price_output",
    "state",
    "input_file_id",
    "output_file_id",
    "error_file_id",
    "request_count",
    "completed_count",
    "failed_count",
    "created_at",
    "updated_at",
    "collected_at",
]
ITEM_COLUMNS = [
    "local_id",
    "custom_id",
    "attempt",
    "run_id",
    "tool_id",
    "rival_tool_id",
    "persona_id",
    "persona_hash",
    "template_hash",
    "flags_json",
]


@dataclass
class BatchRecord:
    """One stored batch: its ids, what it covers, its state and counts as last seen, and when it was collected."""

    local_id: str
    batch_id: str | None
    plan_hash: str
    purpose: str
    run_ids_json: str
    endpoint: str
    base_url: str | None
    model: str
    mode: str
    sampling_json: str
    price_input: float | None
    price_output: float | None
    state: str
    input_file_id: str | None
    output_file_id: str | None
    error_file_id: str | None
    request_count: int
    completed_count: int
    failed_count: int
    created_at: datetime
    updated_at: datetime
    collected_at: datetime | None

    @property
    def name(self) -> str:
        """The id a user types: the endpoint's, or panel's own while the endpoint has not answered."""
        return self.batch_id or self.local_id

    @property
    def live(self) -> bool:
        """True while the endpoint may still answer it."""
        return self.state in LIVE_STATES


@dataclass(frozen=True)
class BatchItem:
    """One request a batch covers: its key, which try at the key it is, and what its verdict row needs."""

    local_id: str
    custom_id: str
    attempt: int
    run_id: str
    tool_id: str
    rival_tool_id: str
    persona_id: str
    persona_hash: str
    template_hash: str
    flags_json: str


@dataclass(frozen=True)
class CollectedLine:
    """A result line judged like a live answer: its item, the attempt it was, and the valid answer or None."""

    item: BatchItem
    attempt: Attempt
    answer: BaseModel | None


@dataclass(frozen=True)
class FailedTry:
    """How often a key's batch lines failed, and the last one's status, answer text and validation feedback."""

    count: int
    status: str
    raw_text: str | None
    feedback: str | None


class BatchStore(Database):
    """Batches, the requests they cover and the result lines stored from them."""

    def record_batch(self, batch: BatchRecord, items: list[BatchItem]) -> None:
        """Store a new batch with every request it covers, in one transaction (before anything is sent)."""
        with self.transaction() as con:
            insert_rows(con, "batches", BATCH_COLUMNS, [[getattr(batch, c) for c in BATCH_COLUMNS]])
            insert_rows(con, "batch_items", ITEM_COLUMNS, [[getattr(i, c) for c in ITEM_COLUMNS] for i in items])

    def update_batch(self, local_id: str, **changes: Any) -> None:
        """Set columns of a stored batch (its endpoint id, state, file ids, counts, collected_at)."""
        unknown = set(changes) - set(BATCH_COLUMNS)
        if unknown:
            raise TypeError(f"update_batch: no column {', '.join(sorted(unknown))}")
        changes["updated_at"] = datetime.now(timezone.utc)
        with self.transaction() as con:
            con.execute(
                f"UPDATE batches SET {', '.join(f'{name} = ?' for name in changes)} WHERE local_id = ?",
                [*changes.values(), local_id],
            )

    def stored_batches(self, where: str = "true", params: list[Any] | None = None) -> list[BatchRecord]:
        """Stored batches matching `where` (SQL over the batches table), newest first."""
        with self.reader() as con:
            return records(
                con.execute(f"SELECT * FROM batches WHERE {where} ORDER BY created_at DESC", params or []),
                BatchRecord,
            )

    def find_batch(self, ref: str) -> BatchRecord:
        """The batch whose endpoint id or panel id is (or starts with) `ref`; StoreError if none or several."""
        found = self.stored_batches("starts_with(coalesce(batch_id, ''), ?) OR starts_with(local_id, ?)", [ref, ref])
        exact = [b for b in found if ref in (b.batch_id, b.local_id)]
        if exact:
            return exact[0]
        if not found:
            raise StoreError(f"{self.path}: no batch '{ref}' (see `panel batch list`)")
        if len(found) > 1:
            raise StoreError(f"batch id '{ref}' is ambiguous: give more characters")
        return found[0]

    def batch_items(self, local_id: str) -> dict[str, BatchItem]:
        """The requests a batch covers, by custom id."""
        with self.reader() as con:
            items = records(con.execute("SELECT * FROM batch_items WHERE local_id = ?", [local_id]), BatchItem)
        return {item.custom_id: item for item in items}

    def covering_batches(self, keys: list[str]) -> dict[str, str]:
        """Key -> local id of the uncollected submitted batch covering it (one still live or not yet collected)."""
        with self.reader() as con:
            rows = con.execute(
                """SELECT i.custom_id, b.local_id FROM batch_items i JOIN batches b USING (local_id)
                   WHERE b.collected_at IS NULL AND b.state NOT IN ('unsent', 'exported')
                     AND i.custom_id IN (SELECT unnest(?))""",
                [keys],
            ).fetchall()
        return dict(rows)

    def stored_line_ids(self, local_id: str) -> set[str]:
        """The custom ids of a batch whose result line is stored."""
        with self.reader() as con:
            rows = con.execute("SELECT custom_id FROM batch_lines WHERE local_id = ?", [local_id]).fetchall()
        return {row[0] for row in rows}

    def failed_tries(self, keys: list[str]) -> dict[str, FailedTry]:
        """Per key with failed batch lines: how many, and the last one's status, answer text and feedback."""
        with self.reader() as con:
            rows = con.execute(
                """SELECT l.custom_id, count(*) OVER (PARTITION BY l.custom_id), l.status, a.raw_text, a.error_message
                   FROM batch_lines l JOIN attempts a ON a.verdict_id = l.verdict_id
                   WHERE l.status <> 'ok' AND l.custom_id IN (SELECT unnest(?))
                   QUALIFY row_number() OVER (PARTITION BY l.custom_id ORDER BY l.stored_at DESC, a.number DESC) = 1""",
                [keys],
            ).fetchall()
        return {key: FailedTry(count, status, raw, feedback) for key, count, status, raw, feedback in rows}

    def store_lines(self, batch: BatchRecord, lines: list[CollectedLine]) -> int:
        """Store result lines not stored before (each a verdict with its attempt, at the batch's prices); how many."""
        if not lines:
            return 0
        now = datetime.now(timezone.utc)
        with self.transaction() as con:
            done = {
                row[0]
                for row in con.execute(
                    "SELECT custom_id FROM batch_lines WHERE local_id = ? AND custom_id IN (SELECT unnest(?))",
                    [batch.local_id, [line.item.custom_id for line in lines]],
                ).fetchall()
            }
            fresh: dict[str, CollectedLine] = {}
            for line in lines:  # a duplicated line in one file counts once
                if line.item.custom_id not in done:
                    fresh.setdefault(line.item.custom_id, line)
            ids = insert_verdicts(con, [_verdict_row(batch, line, now) for line in fresh.values()])
            insert_rows(
                con,
                "batch_lines",
                ["local_id", "custom_id", "status", "verdict_id", "stored_at"],
                [[batch.local_id, key, line.attempt.status, i, now] for (key, line), i in zip(fresh.items(), ids)],
            )
        return len(fresh)


def _verdict_row(batch: BatchRecord, line: CollectedLine, now: datetime) -> dict[str, Any]:
    """A line as run_writes stores a verdict: VERDICT_FIELDS and its one attempt, costed at the batch's prices."""
    item, attempt, answer = line.item, line.attempt, line.answer
    row = kind_of(answer).row(answer) if answer is not None else None
    prompt, completion = attempt.prompt_tokens, attempt.completion_tokens
    cost = Prices(batch.price_input, batch.price_output).cost(prompt, completion)
    return {
        "cache_key": item.custom_id,
        "run_id": item.run_id,
        "tool_id": item.tool_id,
        "rival_tool_id": item.rival_tool_id,
        "persona_id": item.persona_id,
        "persona_hash": item.persona_hash,
        "template_hash": item.template_hash,
        "model": batch.model,
        "mode": batch.mode,
        "sampling_json": batch.sampling_json,
        "verdict": row.verdict if row else None,
        "confidence": row.confidence if row else None,
        "headline": row.headline if row else None,
        "review": row.review if row else None,
        "key_points_json": json.dumps(row.key_points, ensure_ascii=False) if row else None,
        "raw_answer": attempt.raw_text if answer is not None else None,
        "valid": answer is not None,
        "attempt_count": attempt.number,  # as live: the number of the attempt that ended this answer
        "request_count": 1,
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "latency_s": 0.0,
        "flags_json": item.flags_json,
        "created_at": now,
        "attempts": [
            [
                attempt.number,
                attempt.status,
                attempt.http_status,
                attempt.error_class,
                attempt.error_message,
                attempt.raw_text,
                prompt,
                completion,
                0.0,
                0,
                attempt.started_at,
                cost,
                batch.price_input,
                batch.price_output,
            ]
        ],
    }
