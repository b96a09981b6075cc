"""Background jobs for a long-lived process (the desk): draft a run or ask again, one at a time, with progress.

A JobRunner owns one worker thread and a queue: jobs run in the order they were submitted, never two at once,
so the process is one writer at a time. Each job takes the database's writer lock as the command it stands for
does (`panel review` through draft_run, `panel ask-again` through ask_again) and releases it when it ends, so
between jobs other processes (a `panel review`, a `panel sql`) and the desk's own edits get in. A job that
cannot get the lock (another process writes) fails at once with that one line; so does any other error: a
job's failure is its one-line reason, never a traceback, and the worker goes on with the next job.

    runner = JobRunner()
    job_id = runner.draft("runs/desk/acme-vs-other.yaml", settings)
    runner.status(job_id)  # JobStatus(state="running", landed=3, total=8, phase="asking the reviewers", ...)
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from panel.answer_kinds import CHAIR_ID
from panel.answers import Answer
from panel.ask_again import AskAgainOutcome, AskAgainRequest, ask_again
from panel.config import Settings
from panel.errors import PanelError
from panel.model.endpoint import Endpoint
from panel.pipeline import DraftOutcome, DraftProgress, draft_run
from panel.review import PreparedRun, ReviewOutcome
from panel.served_model import with_served_model
from panel.store import Store
from panel.vendor_text import strip_hidden

QUEUED, RUNNING, FINISHED, FAILED = "queued", "running", "finished", "failed"
STATES = (QUEUED, RUNNING, FINISHED, FAILED)


@dataclass(frozen=True)
class JobStatus:
    """A job as it stands: its state, the reviewers' verdicts landed of the total, and why it failed if it did.

    `landed`/`total` count the reviewers' verdicts of a draft (cached ones land at once; total is None until the
    run is planned) and the one answer of an ask-again. `phase` says what it is doing ("asking the reviewers",
    "asking the chair", "pages written", "asking the model"). `result` is the DraftOutcome or
    AskAgainOutcome once it ended (a draft that stopped early has both a result and a failure).
    """

    job_id: str
    kind: str  # draft | ask-again
    subject: str  # the run file, or "skeptic on SmolVLM2-2B"
    state: str = QUEUED
    landed: int = 0
    total: int | None = None
    phase: str = ""
    failure: str | None = None
    run_id: str | None = None
    notices: tuple[str, ...] = ()  # lines the user should read (no key for a remote endpoint, a reader's wait)
    result: DraftOutcome | AskAgainOutcome | None = field(default=None, repr=False)
    submitted_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    started_at: datetime | None = None
    ended_at: datetime | None = None

    @property
    def done(self) -> bool:
        """True once the job finished or failed."""
        return self.state in (FINISHED, FAILED)


Work = Callable[[Callable[..., None]], "DraftOutcome | AskAgainOutcome"]


class JobRunner:
    """Runs jobs one at a time on a background thread; `on_update` (if given) sees every new JobStatus.

    Use as a context manager, or call close(): it waits for the running job and fails the queued ones.
    """

    def __init__(self, on_update: Callable[[JobStatus], None] | None = None) -> None:
        self._on_update = on_update
        self._lock = threading.Lock()
        self._jobs: dict[str, JobStatus] = {}
        self._changed = threading.Condition(self._lock)
        self._queue: queue.Queue[tuple[str, Work] | None] = queue.Queue()
        self._numbers = itertools.count(1)
        self._closed = False
        self._thread = threading.Thread(target=self._work, name="panel-jobs", daemon=True)
        self._thread.start()

    def draft(self, run_file: str | Path, settings: Settings, *, endpoint: Endpoint | None = None) -> str:
        """Queue draft_run of `run_file` (reviewers, chair, pages) and return the job's id."""

        def work(update: Callable[..., None]) -> DraftOutcome:
            asked = _with_model(settings, update)
            outcome = draft_run(run_file, asked, endpoint=endpoint, progress=_DraftReport(update))
            if error := outcome.error():  # a refused key, an unknown model, a spent budget
                update(failure=str(error))
            return outcome

        return self._submit("draft", str(run_file), work)

    def ask_again(
        self, run_id: str, request: AskAgainRequest, settings: Settings, *, endpoint: Endpoint | None = None
    ) -> str:
        """Queue ask_again of `request` on run `run_id` and return the job's id."""
        subject = f"{request.persona_id} on {request.tool_ref or f'pair {request.pair_number}'}"

        def work(update: Callable[..., None]) -> AskAgainOutcome:
            update(run_id=run_id, total=1, phase="asking the model")
            asked = _with_model(settings, update)
            outcome = ask_again(Store(settings.db_path), run_id, request, asked, endpoint=endpoint)
            update(landed=1)
            return outcome

        return self._submit("ask-again", subject, work)

    def status(self, job_id: str) -> JobStatus:
        """The job's status now; raises KeyError for an id this runner never gave."""
        with self._lock:
            return self._jobs[job_id]

    def statuses(self) -> list[JobStatus]:
        """Every job's status, oldest first."""
        with self._lock:
            return list(self._jobs.values())

    def wait(self, job_id: str, timeout: float | None = None) -> JobStatus:
        """Wait until the job finished or failed (at most `timeout` seconds) and return its status."""
        with self._changed:
            self._changed.wait_for(lambda: self._jobs[job_id].done, timeout)
            return self._jobs[job_id]

    def close(self, timeout: float | None = None) -> None:
        """Stop taking jobs, fail the queued ones, and wait (up to `timeout`) for the running one to end."""
        with self._lock:
            self._closed = True
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                self._update(item[0], state=FAILED, failure="not started: the job runner was closed")
        self._queue.put(None)
        self._thread.join(timeout)

    def __enter__(self) -> JobRunner:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _submit(self, kind: str, subject: str, work: Work) -> str:
        with self._lock:
            if self._closed:
                raise RuntimeError("the job runner is closed")
            job_id = f"job-{next(self._numbers)}"
            self._jobs[job_id] = JobStatus(job_id, kind, subject)
        self._queue.put((job_id, work))
        self._notify(job_id)
        return job_id

    def _update(self, job_id: str, **changes: Any) -> None:
        with self._changed:
            job = self._jobs[job_id]
            if "notice" in changes:
                changes["notices"] = (*job.notices, changes.pop("notice"))
            if "advance" in changes:
                changes["landed"] = job.landed + changes.pop("advance")
            self._jobs[job_id] = replace(job, **changes)
            self._changed.notify_all()
        self._notify(job_id)

    def _notify(self, job_id: str) -> None:
        if self._on_update is not None:
            self._on_update(self.status(job_id))

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            job_id, work = item
            self._update(job_id, state=RUNNING, started_at=datetime.now(timezone.utc))

            def update(**changes: Any) -> None:
                self._update(job_id, **changes)  # noqa: B023  (called only while this job runs)

            try:
                result = work(update)
            except Exception as error:  # noqa: BLE001 - the desk shows one line, and the next job must still run
                self._update(job_id, state=FAILED, failure=_one_line(error), ended_at=datetime.now(timezone.utc))
                continue
            state = FAILED if self.status(job_id).failure else FINISHED
            self._update(job_id, state=state, result=result, phase="", ended_at=datetime.now(timezone.utc))


def _with_model(settings: Settings, update: Callable[..., None]) -> Settings:
    """`settings` with the model to ask: an endpoint configured without one is asked which it serves, in the job
    (as `panel review` does), so an endpoint that is down fails the job, not the desk that queued it."""
    found, note = with_served_model(settings)
    if note:
        update(notice=note)
    return found


def _one_line(error: Exception) -> str:
    """Our errors' own line; anything else as its type and first line (a bug: --debug in the CLI shows more)."""
    lines = str(error).strip().splitlines()
    text = strip_hidden(lines[0]) if lines else ""
    return text if isinstance(error, PanelError) else f"unexpected error: {type(error).__name__}: {text}"[:300]


class _DraftReport(DraftProgress):
    """A draft's progress as job updates: the plan, each reviewer's answer, the chair, the pages."""

    def __init__(self, update: Callable[..., None]) -> None:
        self.update = update

    def planned(self, prepared: PreparedRun) -> None:
        self.update(run_id=prepared.run_id, total=len(prepared.jobs), phase="planned")

    def asking(self, review: ReviewOutcome) -> None:
        self.update(total=review.needed, landed=review.cached, phase="asking the reviewers")

    def answered(self, answer: Answer) -> None:
        if answer.job.persona.id != CHAIR_ID:
            self.update(advance=1)

    def reviewed(self, draft: DraftOutcome) -> None:
        self.update(phase="asking the chair")

    def rendered(self, draft: DraftOutcome) -> None:
        self.update(phase="pages written")

    def notice(self, line: str) -> None:
        self.update(notice=line)
