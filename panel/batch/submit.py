"""Submitting a batch so that a kill -9 at any moment never sends the same request in two live batches.

The order: record the batch and every request it covers (state `pending`, under panel's own id) -> write the
JSONL -> upload it (files.create, purpose batch) -> create the batch (batches.create, no SDK retry, metadata
{"panel_batch": local id, "panel_plan": hash of its custom ids}) -> record the endpoint's id. A process killed
after create but before that last write leaves a pending record; the next command that submits or collects looks
for its local id in batches.list() first (settle_pending), adopts the batch it finds, and marks it `unsent` only
when the endpoint has none, so its requests may go out again. While a batch is live its keys are asked nowhere
else (Store.covering_batches).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import openai

from panel.batch.jsonl import CHAT_PATH, BatchRequest, write_requests_file
from panel.cards import content_hash
from panel.config import Settings
from panel.cost import Prices
from panel.errors import BatchError
from panel.model.identity import endpoint_identity
from panel.model.modes import get_mode
from panel.store import Store
from panel.store.batches import BatchRecord

LOCAL_KEY = "panel_batch"
PLAN_KEY = "panel_plan"
# How far back batches.list() is read for a pending batch: far more than a create takes to answer.
ADOPT_WINDOW = timedelta(hours=1)


def submit(
    store: Store,
    client: openai.OpenAI,
    settings: Settings,
    requests: list[BatchRequest],
    purpose: str,
    notice: Callable[[str], None] = lambda line: None,
) -> BatchRecord:
    """Record, upload and create one batch of `requests`; its stored record. BatchError if the endpoint refuses."""
    record = new_record(settings, requests, purpose, "pending")
    store.record_batch(record, [request.item(record.local_id) for request in requests])
    path = requests_path(store, record.local_id)
    write_requests_file(path, requests, settings, get_mode(settings.structured_mode))
    try:
        with open(path, "rb") as upload:
            uploaded = client.files.create(file=(path.name, upload), purpose="batch")
        store.update_batch(record.local_id, input_file_id=uploaded.id)
        created = client.with_options(max_retries=0).batches.create(
            input_file_id=uploaded.id,
            endpoint=CHAT_PATH,
            completion_window="24h",
            metadata={LOCAL_KEY: record.local_id, PLAN_KEY: record.plan_hash},
        )
    except openai.APIStatusError as error:  # refused: nothing was created, the requests may go out again
        store.update_batch(record.local_id, state="unsent")
        raise BatchError(f"the endpoint refused the batch (HTTP {error.status_code}): {_said(error)}") from None
    except openai.APIError as error:  # no answer: it may exist; the next command looks for it before sending more
        raise BatchError(
            f"no answer creating batch {record.local_id} ({type(error).__name__}); rerun the same command: "
            "it finds the batch if the endpoint made it, or sends it again if not"
        ) from None
    finally:
        path.unlink(missing_ok=True)
    store.update_batch(record.local_id, batch_id=created.id, state=created.status)
    notice(f"batch {created.id} submitted: {len(requests):,} requests ({purpose}), file {uploaded.id}")
    return store.find_batch(record.local_id)


def new_record(settings: Settings, requests: list[BatchRequest], purpose: str, state: str) -> BatchRecord:
    """A batch record for `requests` at the settings' endpoint, model and batch prices (not yet stored)."""
    now = datetime.now(timezone.utc)
    prices = Prices.batch_of(settings)
    keys = sorted(request.job.cache_key for request in requests)
    runs = sorted({request.run_id for request in requests})
    return BatchRecord(
        local_id=f"pb_{uuid.uuid4().hex[:20]}",
        batch_id=None,
        plan_hash=content_hash(keys)[:32],
        purpose=purpose,
        run_ids_json=content_json(runs),
        endpoint=endpoint_identity(settings),
        base_url=settings.base_url,
        model=settings.model_name,
        mode=settings.structured_mode,
        sampling_json=content_json(settings.sampling()),
        price_input=prices.input,
        price_output=prices.output,
        state=state,
        input_file_id=None,
        output_file_id=None,
        error_file_id=None,
        request_count=len(requests),
        completed_count=0,
        failed_count=0,
        created_at=now,
        updated_at=now,
        collected_at=None,
    )


def content_json(value: object) -> str:
    """`value` as compact JSON, as the store keeps it."""
    return json.dumps(value, sort_keys=True)


def requests_path(store: Store, local_id: str) -> Path:
    """Where a batch's JSONL is written before its upload (beside the database; removed once sent)."""
    return store.path.parent / "batches" / f"{local_id}.jsonl"


def settle_pending(store: Store, client: openai.OpenAI) -> None:
    """Resolve batches whose create never answered: adopt the endpoint's batch carrying their id, or mark unsent."""
    pending = {b.local_id: b for b in store.stored_batches("state = 'pending'")}
    if not pending:
        return
    since = (min(b.created_at for b in pending.values()) - ADOPT_WINDOW).timestamp()
    for remote in client.batches.list(limit=100):  # newest first; the SDK pages on
        local_id = (remote.metadata or {}).get(LOCAL_KEY)
        if local_id in pending:
            store.update_batch(local_id, batch_id=remote.id, state=remote.status, input_file_id=remote.input_file_id)
            del pending[local_id]
        if not pending or remote.created_at < since:
            break
    for local_id in pending:
        store.update_batch(local_id, state="unsent")


def refresh(store: Store, client: openai.OpenAI, batch: BatchRecord) -> BatchRecord:
    """The batch as the endpoint reports it now (state, files, counts), stored; unchanged if it is not live."""
    if not batch.live or batch.batch_id is None:
        return batch
    remote = client.batches.retrieve(batch.batch_id)
    counts = remote.request_counts
    store.update_batch(
        batch.local_id,
        state=remote.status,
        output_file_id=remote.output_file_id,
        error_file_id=remote.error_file_id,
        completed_count=counts.completed if counts else batch.completed_count,
        failed_count=counts.failed if counts else batch.failed_count,
    )
    return store.find_batch(batch.local_id)


def cancel(store: Store, client: openai.OpenAI, batch: BatchRecord) -> BatchRecord:
    """Ask the endpoint to cancel a live batch (what it finished stays collectable); BatchError if it has ended."""
    if not batch.live or batch.batch_id is None:
        raise BatchError(f"batch {batch.name} is {batch.state}: nothing to cancel")
    remote = client.batches.cancel(batch.batch_id)
    store.update_batch(batch.local_id, state=remote.status)
    return store.find_batch(batch.local_id)


def _said(error: openai.APIStatusError) -> str:
    body = error.body if isinstance(error.body, dict) else {}
    message = body.get("message") or (body.get("error") or {}).get("message") or str(error)
    return "".join(c for c in str(message)[:200] if c.isprintable())
