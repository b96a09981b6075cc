"""Collecting a batch: stream its output and error files line by line, judge each line as a live answer, store it.

Lines are stored in chunks of CHUNK_LINES, each in one transaction with its batch_lines rows, and a line stored
before is skipped, so a collect killed at any point loses only the chunk in hand and a rerun stores the rest once.
Neither file is ever held whole, nor a line longer than jsonl.MAX_LINE_BYTES (skipped unread). Once every line of
an ended batch is read, its requests with no line (an expired or cancelled batch's rest, a line the endpoint
dropped) are counted missing, and the batch is marked collected.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone

import openai

from panel.batch.jsonl import MAX_LINE_BYTES, READ_BYTES, LineCounts, bounded_lines, judge_lines
from panel.store import Store
from panel.store.batches import ENDED_STATES, BatchItem, BatchRecord, CollectedLine

CHUNK_LINES = 500  # one transaction per chunk: ~20 ms, so 10,000 lines cost 20 of them


@dataclass
class Collected:
    """What collecting one batch (or importing one file) did: lines by kind, stored, skipped, missing."""

    name: str
    counts: LineCounts = field(default_factory=LineCounts)
    stored: int = 0  # new verdict rows
    already: int = 0  # lines stored before (a second collect, a duplicate line)
    missing: int = 0  # requests the files have no line for
    finished: bool = False  # every line is in: the batch is collected

    def line(self) -> str:
        """One line a user reads: what came back and what was stored."""
        c = self.counts
        text = (
            f"{self.name}: {c.ok + c.invalid + c.errors:,} lines ({c.ok:,} valid, {c.invalid:,} invalid, "
            f"{c.errors:,} errors): {self.stored:,} stored, {self.already:,} already stored"
        )
        extras = [
            f"{c.malformed:,} malformed lines" if c.malformed else "",
            f"{c.oversized:,} lines over {MAX_LINE_BYTES // 2**20} MiB skipped" if c.oversized else "",
            f"{c.unknown:,} unknown custom_ids" if c.unknown else "",
            f"{self.missing:,} missing" if self.missing else "",
        ]
        return text + "".join(f", {extra}" for extra in extras if extra)


def collect(store: Store, client: openai.OpenAI, batch: BatchRecord) -> Collected:
    """Store every line of an ended batch's output and error files not stored yet; mark it collected."""
    outcome = Collected(batch.name)
    if batch.collected_at is not None or batch.state not in ENDED_STATES:
        outcome.finished = batch.collected_at is not None
        return outcome
    items = store.batch_items(batch.local_id)
    for file_id in (batch.output_file_id, batch.error_file_id):
        if file_id:
            with client.files.with_streaming_response.content(file_id) as response:
                lines = bounded_lines(response.iter_bytes(READ_BYTES))
                store_stream(store, {batch.local_id: batch}, lines, items, outcome)
    finish(store, batch, items, outcome)
    return outcome


def store_stream(
    store: Store,
    batches: dict[str, BatchRecord],
    lines: Iterable[str | bytes | None],
    items: dict[str, BatchItem],
    outcome: Collected,
) -> None:
    """Judge and store `lines` answering `items` (of `batches`, by local id) in chunks; count into `outcome`."""
    counts = LineCounts()
    for chunk in _chunks(judge_lines(lines, items, batches, counts)):
        by_batch: dict[str, list[CollectedLine]] = {}
        for line in chunk:
            by_batch.setdefault(line.item.local_id, []).append(line)
        for local_id, lines_of in by_batch.items():
            stored = store.store_lines(batches[local_id], lines_of)
            outcome.stored += stored
            outcome.already += len(lines_of) - stored
    outcome.counts.add(counts)


def finish(store: Store, batch: BatchRecord, items: dict[str, BatchItem], outcome: Collected) -> None:
    """Count the requests with no stored line, and mark the batch collected."""
    outcome.missing = len(items) - len(store.stored_line_ids(batch.local_id))
    store.update_batch(batch.local_id, collected_at=datetime.now(timezone.utc))
    outcome.finished = True


def _chunks(lines: Iterator[CollectedLine]) -> Iterator[list[CollectedLine]]:
    chunk: list[CollectedLine] = []
    for line in lines:
        chunk.append(line)
        if len(chunk) >= CHUNK_LINES:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
