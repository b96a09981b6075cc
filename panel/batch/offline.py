"""Offline engines: `panel batch export` writes a run's missing requests as OpenAI batch JSONL for vLLM's run_batch
(or any engine reading the format); `panel batch import` stores the results file through the same validation.

An export is recorded as a batch (state `exported`) with every request it covers, so the import knows which
verdict each custom_id is. A results file is read line by line: a custom_id no export asked for, a duplicate line,
a line cut short and a request with no line are each counted, never stored twice and never lost (a missing one
is written again by the next export).
"""

from __future__ import annotations

from pathlib import Path

from panel.batch.collect import Collected, store_stream
from panel.batch.draft import plan_requests
from panel.batch.jsonl import file_lines, write_requests_file
from panel.batch.submit import new_record
from panel.config import Settings
from panel.errors import BatchError
from panel.model.modes import get_mode
from panel.review import prepare_run
from panel.store import Store
from panel.store.batches import BatchItem, BatchRecord


def export_run(
    run_file: str | Path, settings: Settings, out: Path, personas: list[str] | None = None
) -> tuple[BatchRecord | None, int]:
    """Write the run's requests that have no valid answer (and no live batch) to `out`; (its record, cached count)."""
    prepared = prepare_run(run_file, settings, personas)
    store = Store(settings.db_path)
    store.acquire_writer()
    try:
        p = prepared
        store.begin_run(p.run_id, p.spec, settings, p.personas, p.templates, p.jobs, p.purpose)
        jobs = {job.cache_key: (p.run_id, job) for job in p.jobs}
        covered = store.covering_batches(list(jobs))
        answered = store.answered_keys(list(jobs)) | set(covered)
        requests, _, _ = plan_requests(store, settings, jobs, answered)
        if not requests:
            return None, len(jobs)
        record = new_record(settings, requests, "export", "exported")
        store.record_batch(record, [request.item(record.local_id) for request in requests])
        write_requests_file(out, requests, settings, get_mode(settings.structured_mode))
        return store.find_batch(record.local_id), len(jobs) - len(requests)
    finally:
        store.release_writer()


def import_results(path: Path, settings: Settings) -> Collected:
    """Store a results file's lines against the exports of this database; what was stored, skipped and missing."""
    store = Store.existing(settings.db_path)
    if not path.is_file():
        raise BatchError(f"{path}: no such results file")
    store.acquire_writer()
    try:
        exports = {b.local_id: b for b in store.stored_batches("state = 'exported'")}
        if not exports:
            raise BatchError("no exported batch in this database: run `panel batch export RUN --out FILE` first")
        items: dict[str, BatchItem] = {}
        for batch in exports.values():  # newest first: a key exported twice answers its latest export
            for key, item in store.batch_items(batch.local_id).items():
                items.setdefault(key, item)
        outcome = Collected(path.name)
        store_stream(store, exports, file_lines(path), items, outcome)
        # Exported requests still without a valid answer: the next export writes them again.
        outcome.missing = len(items) - len(store.answered_keys(list(items)))
        outcome.finished = outcome.missing == 0
        return outcome
    finally:
        store.release_writer()
