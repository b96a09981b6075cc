"""A run in batch mode: the reviewers in one batch, failed lines in follow-up batches, the chair in a second batch,
then the pages. Each step is idempotent and resumable: rerunning the same command, in a new process hours later,
collects what ended, asks what is missing, and goes on; `wait` polls (with backoff) until the run is done.

    draft = batch_draft("runs/example.yaml", settings, wait=True)
    print(draft.status, [b.name for b in draft.submitted], draft.pages)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import openai

from panel.answer_kinds import CHAIR_ID
from panel.answers import VerdictJob
from panel.batch.collect import Collected, collect
from panel.batch.jsonl import BatchRequest
from panel.batch.submit import refresh, settle_pending, submit
from panel.chair import chair_jobs
from panel.config import Settings
from panel.cost import Prices, RunCost
from panel.model.client import make_batch_client
from panel.model.modes import get_mode
from panel.personas import load_templates
from panel.render import write_run_pages
from panel.review import PreparedRun, prepare_run
from panel.store import Store
from panel.store.batches import BatchRecord
from panel.tally import RunTally, tally_run

RunJobs = tuple[str, list[VerdictJob]]  # a run id and the jobs of it a batch step covers
MAX_POLL_S = 60.0
# OpenAI takes up to 50,000 requests and 200 MB a batch; a verdict's line is ~4 KB, so 40,000 stay under both.
MAX_BATCH_REQUESTS = 40_000


class BatchProgress:
    """What batch mode reports as it goes; each method does nothing here: override what you show."""

    def notice(self, line: str) -> None:
        """A batch submitted or collected, a step done, the rest going live."""

    def waiting(self, batch: object, waited_s: float) -> None:
        """A poll of a live batch (the SDK's Batch: status, request_counts) while `wait` is on."""


@dataclass
class BatchStep:
    """One pass over some jobs: batches still live, what was collected, and where the jobs stand."""

    needed: int = 0
    answered: int = 0
    exhausted: int = 0  # keys whose batch tries (1 + reasks) all failed: no valid answer
    in_flight: list[BatchRecord] = field(default_factory=list)
    submitted: list[BatchRecord] = field(default_factory=list)
    collected: list[Collected] = field(default_factory=list)
    to_ask_live: int = 0  # failed keys left for live re-asks (then_live)


@dataclass
class BatchDraft:
    """Where a run in batch mode stands: reviewers and chair, batches live and submitted, lines collected, pages."""

    prepared: PreparedRun
    settings: Settings
    store: Store
    reviewers: BatchStep = field(default_factory=BatchStep)
    chair: BatchStep = field(default_factory=BatchStep)
    submitted: list[BatchRecord] = field(default_factory=list)
    collected: list[Collected] = field(default_factory=list)
    go_live: bool = False  # the rest is asked live (then_live): call pipeline.draft_run next
    tally: RunTally | None = None
    pages: list[Path] = field(default_factory=list)

    @property
    def run_id(self) -> str:
        """The run's id (as in a live review)."""
        return self.prepared.run_id

    @property
    def in_flight(self) -> list[BatchRecord]:
        """Batches the endpoint is still working on: collect them by rerunning the command."""
        return self.chair.in_flight or self.reviewers.in_flight

    @property
    def status(self) -> str:
        """waiting (a batch is live), live (the rest goes live), incomplete (a verdict failed), or finished."""
        if self.in_flight:
            return "waiting"
        if self.go_live:
            return "live"
        return "incomplete" if self.reviewers.exhausted or self.chair.exhausted else "finished"

    @property
    def cost(self) -> RunCost:
        """What the lines collected by this command cost at the batch prices."""
        return batch_cost(self.collected, self.settings)


class BatchLog(Protocol):
    """What a command's batch steps add to as they go (BatchDraft, probes.ProbeBatch)."""

    submitted: list[BatchRecord]
    collected: list[Collected]


def batch_cost(collected: list[Collected], settings: Settings) -> RunCost:
    """What these collected lines cost at the settings' batch prices."""
    prompt = sum(c.counts.prompt_tokens for c in collected)
    completion = sum(c.counts.completion_tokens for c in collected)
    prices = Prices.batch_of(settings)
    return RunCost(prompt, completion, prices.cost(prompt, completion), prices)


def batch_draft(
    run_file: str | Path,
    settings: Settings,
    *,
    wait: bool = False,
    then_live: bool = False,
    personas: list[str] | None = None,
    progress: BatchProgress | None = None,
    client: openai.OpenAI | None = None,
    poll_s: float = 5.0,
) -> BatchDraft:
    """Take a run as far as its batches allow: collect ended ones, submit what is missing, chair, render.

    Without `wait` it returns once a batch is live (draft.in_flight); with it, it polls until the pages are
    written. `then_live`: failed lines (and the chair) are left to a live review (draft.go_live).
    Raises EndpointError for an endpoint without the Batch API, BatchError when a batch is refused, StoreError.
    """
    progress = progress or BatchProgress()
    prepared = prepare_run(run_file, settings, personas)
    store = Store(settings.db_path)
    client = client or make_batch_client(settings)
    draft = BatchDraft(prepared, settings, store)

    def record_run() -> list[RunJobs]:
        p = prepared
        store.begin_run(p.run_id, p.spec, settings, p.personas, p.templates, p.jobs, p.purpose)
        return [(p.run_id, p.jobs)]

    draft.reviewers = drive(store, client, settings, record_run, "review", then_live, wait, poll_s, progress, draft)
    if draft.reviewers.in_flight:
        return draft
    if then_live:
        draft.go_live = True  # live re-asks, the chair and the pages: the ordinary live review does all three
        return draft
    store.finish_run(draft.run_id, "incomplete" if draft.reviewers.exhausted else "finished")

    def record_chair() -> list[RunJobs]:
        jobs = chair_jobs(tally_run(store.load_run(draft.run_id)), load_templates(settings.prompts_dir), settings)
        if jobs:
            store.add_run_items(draft.run_id, jobs, prompt_kind=CHAIR_ID)
        return [(draft.run_id, jobs)]

    draft.chair = drive(store, client, settings, record_chair, "chair", False, wait, poll_s, progress, draft)
    if draft.chair.in_flight:
        return draft
    draft.tally, draft.pages = write_run_pages(store, draft.run_id, settings.out_dir, settings.signup_link)
    return draft


def drive(
    store: Store,
    client: openai.OpenAI,
    settings: Settings,
    record: Callable[[], list[RunJobs]],
    purpose: str,
    live_reasks: bool,
    wait: bool,
    poll_s: float,
    progress: BatchProgress,
    log: BatchLog | None = None,
) -> BatchStep:
    """Step the jobs `record` stores and returns until no batch of theirs is live (or once, without `wait`)."""
    while True:
        store.acquire_writer()
        try:
            step = batch_step(store, client, settings, record(), purpose, live_reasks, progress)
        finally:
            store.release_writer()
        if log is not None:
            log.submitted += step.submitted
            log.collected += step.collected
        if not step.in_flight or not wait:
            return step
        wait_until_ended(client, step.in_flight, progress, poll_s)


def batch_step(
    store: Store,
    client: openai.OpenAI,
    settings: Settings,
    runs: list[RunJobs],
    purpose: str,
    live_reasks: bool,
    progress: BatchProgress,
) -> BatchStep:
    """Collect the ended batches covering these jobs, then submit one batch of what has no valid answer yet
    (plan_requests). The caller holds the writer lock.
    """
    jobs = {job.cache_key: (run_id, job) for run_id, run_jobs in runs for job in run_jobs}
    step = BatchStep(needed=len(jobs))
    settle_pending(store, client)
    for local_id in sorted(set(store.covering_batches(list(jobs)).values())):
        batch = refresh(store, client, store.find_batch(local_id))
        if batch.live:
            step.in_flight.append(batch)
            continue
        collected = collect(store, client, batch)
        step.collected.append(collected)
        progress.notice(f"collected {collected.line()}")
    answered = store.answered_keys(list(jobs))
    step.answered = len(answered)
    if step.in_flight:
        return step
    requests, step.exhausted, step.to_ask_live = plan_requests(store, settings, jobs, answered, live_reasks)
    for start in range(0, len(requests), MAX_BATCH_REQUESTS):
        batch = submit(store, client, settings, requests[start : start + MAX_BATCH_REQUESTS], purpose, progress.notice)
        step.submitted.append(batch)
        step.in_flight.append(batch)
    return step


def plan_requests(
    store: Store,
    settings: Settings,
    jobs: dict[str, tuple[str, VerdictJob]],
    answered: set[str],
    live_reasks: bool = False,
) -> tuple[list[BatchRequest], int, int]:
    """The requests for keys with no valid answer: (requests, keys out of tries, keys left for live re-asks).

    A key never tried goes as planned; a failed one goes again with its validation feedback (as live re-asks
    do) until it has failed 1 + settings.reasks times, or is left for a live review with `live_reasks`.
    """
    todo = [key for key in jobs if key not in answered]
    failed = store.failed_tries(todo)
    mode = get_mode(settings.structured_mode)
    requests, exhausted, to_live = [], 0, 0
    for key in todo:
        run_id, job = jobs[key]
        tried = failed.get(key)
        if tried is None:
            requests.append(BatchRequest(run_id, job, job.messages))
        elif tried.count > settings.reasks:
            exhausted += 1
        elif live_reasks:
            to_live += 1
        else:
            again = mode.reask(tried.raw_text, tried.feedback or "") if tried.status == "invalid" else []
            requests.append(BatchRequest(run_id, job, job.messages + again, tried.count + 1))
    return requests, exhausted, to_live


def wait_until_ended(client: openai.OpenAI, batches: list[BatchRecord], progress: BatchProgress, poll_s: float) -> None:
    """Poll the endpoint (reading only) until none of `batches` is live; the delay doubles up to MAX_POLL_S."""
    started, delay = time.monotonic(), poll_s
    live = [b.batch_id for b in batches if b.batch_id]
    while live:
        still = []
        for batch_id in live:
            remote = client.batches.retrieve(batch_id)
            progress.waiting(remote, time.monotonic() - started)
            if remote.status in ("validating", "in_progress", "finalizing", "cancelling"):
                still.append(batch_id)
        live = still
        if live:
            time.sleep(delay)
            delay = min(delay * 2, MAX_POLL_S)
