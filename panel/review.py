"""Review a run file: validate and render every prompt, ask what is missing concurrently, store answers as they land."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

from panel.answers import Answer, VerdictJob
from panel.ask import RunBudget, ask_all, plan_run
from panel.cards import RunSpec, content_hash, load_run
from panel.config import Settings
from panel.errors import EndpointError
from panel.model.client import make_client
from panel.model.embedded import open_endpoint
from panel.model.endpoint import Endpoint
from panel.model.modes import get_mode
from panel.personas import Persona, PromptTemplates, load_personas, load_templates
from panel.store import FOLD_WAIT_S, AnswerWriter, Store
from panel.store.run_writes import run_record


@dataclass
class ReviewOutcome:
    """What a review did: verdicts needed, cached, asked and failed, and why it stopped early if it did."""

    run_id: str
    needed: int
    cached: int
    answers: list[Answer] = field(default_factory=list)
    status: str = "finished"
    stop_reason: str | None = None  # e.g. "request budget of 50 reached"
    # The endpoint cannot answer this run (bad key, unknown model, unreachable): one line naming what to fix.
    endpoint_fault: str | None = None
    # A jury's or samples' consensus was stored for the run when it began (read by the rehearsal, so a run of one
    # model and one sample learns it without opening the database again at its end).
    consensus_stored: bool = False

    @property
    def asked(self) -> int:
        """Verdicts requested from the model in this invocation."""
        return len(self.answers)

    @property
    def failed(self) -> int:
        """Verdicts that got no valid answer after every re-ask."""
        return sum(1 for a in self.answers if a.verdict is None)

    @property
    def stored(self) -> int:
        """Verdicts of the run with a valid answer now: cached ones and those this invocation got."""
        return self.cached + self.asked - self.failed

    def endpoint_error(self) -> EndpointError | None:
        """The error to raise when the endpoint could not answer the run: what to fix, and what was stored."""
        if self.endpoint_fault is None:
            return None
        return EndpointError(
            f"{self.endpoint_fault} ({self.stored} of {self.needed} verdicts stored; rerun the same command once fixed)"
        )

    @property
    def requests(self) -> int:
        """HTTP requests made, counting re-asks and the SDK's retries."""
        return sum(a.requests for a in self.answers)

    @property
    def tokens(self) -> int:
        """Prompt plus completion tokens spent."""
        return sum(a.prompt_tokens + a.completion_tokens for a in self.answers)


@dataclass(frozen=True)
class PreparedRun:
    """A run checked and planned before any model call: cards, personas, templates and jobs."""

    run_id: str
    spec: RunSpec
    personas: list[Persona]
    templates: PromptTemplates
    jobs: list[VerdictJob]
    # review: an editor's run; compare/check: a maintainer's probe, which `panel render` skips by default.
    purpose: str = "review"


def prepare_run(run_file: str | Path, settings: Settings, persona_ids: list[str] | None = None) -> PreparedRun:
    """Load the run file, personas and templates and render every prompt; raise on the first error."""
    spec = load_run(run_file, settings.allow_outside_cards)
    personas = load_personas(settings.personas_dir, persona_ids)
    templates = load_templates(settings.prompts_dir)
    get_mode(settings.structured_mode)
    jobs = plan_run(spec, personas, templates, settings)
    run_id = content_hash({"run": spec.model_dump(mode="json"), "keys": [j.cache_key for j in jobs]})[:12]
    return PreparedRun(run_id, spec, personas, templates, jobs)


def review(
    prepared: PreparedRun,
    settings: Settings,
    store: Store,
    refresh: bool = False,
    endpoint: Endpoint | None = None,
    on_answer: Callable[[Answer], None] | None = None,
    on_start: Callable[[ReviewOutcome], None] | None = None,
    cleared: Future[bool] | None = None,
) -> ReviewOutcome:
    """Ask for every verdict the run lacks (all of them with `refresh`) and store each one.

    `on_start` sees the outcome (needed, cached) before the first request; `on_answer` each answer. `cleared`:
    the endpoint's preflight (served_model.start_preflight), which lets the first wave go out whole.

    Status: finished, incomplete (some verdicts got no valid answer) or stopped (budget, Ctrl-C, or an
    endpoint that cannot answer: outcome.endpoint_fault).
    Raises StoreError at once when another process is writing the same database, or it cannot take a write.
    """
    store.acquire_writer()
    try:
        record = run_record(
            prepared.run_id,
            prepared.spec,
            settings,
            prepared.personas,
            prepared.templates,
            prepared.jobs,
            prepared.purpose,
        )
        # The run's first writes rehearsed (rolled back) before the first request: a damaged file fails here,
        # not in the writer thread with requests in flight. The same connection reads what is answered already.
        done, consensus_stored = store.rehearse_run(record, [j.cache_key for j in prepared.jobs], answered=not refresh)
        # One request per key even when a run file names the same pair twice.
        todo = list({j.cache_key: j for j in prepared.jobs if j.cache_key not in done}.values())
        outcome = ReviewOutcome(prepared.run_id, len(prepared.jobs), len(prepared.jobs) - len(todo))
        outcome.consensus_stored = consensus_stored
        if on_start:
            on_start(outcome)
        outcome.status = "stopped"  # until the asking ends normally
        # The writer thread records the run while the first requests are in flight.
        with AnswerWriter(
            store,
            prepared.run_id,
            settings,
            expected=len(todo),
            first=lambda: store.record_run(record, wait_s=FOLD_WAIT_S),
        ) as writer:
            if todo:
                _ask_todo(todo, settings, store, writer, outcome, endpoint, on_answer, cleared)
            outcome.status = "stopped" if outcome.stop_reason else "incomplete" if outcome.failed else "finished"
            writer.finish(outcome.status)
        return outcome
    finally:
        store.release_writer()


def prefix_order(jobs: list[VerdictJob]) -> list[VerdictJob]:
    """`jobs` persona by persona, and within a persona pair by pair, a pair's two reviews back to back.

    A server that keeps the last prompt (llama.cpp) then evaluates only what differs from the previous request:
    the pair layout of prompts/user.j2 makes a pair's second review differ only in its last lines, and the next
    pair reuses the persona's system prompt. Within a persona and pair the planned order is kept.
    """
    personas: dict[str, int] = {}
    for job in jobs:
        personas.setdefault(job.persona.id, len(personas))
    return sorted(jobs, key=lambda job: (personas[job.persona.id], job.pair_index))


def ask_jobs(
    jobs: list[VerdictJob],
    settings: Settings,
    store: Store,
    budget: RunBudget,
    on_answer: Callable[[Answer], None],
    endpoint: Endpoint | None = None,
    cleared: Future[bool] | None = None,
) -> None:
    """Ask `jobs` on `endpoint`, or on the embedded server started for as long as they take (log beside the db).

    `cleared`: the endpoint's preflight; until it is True (or the first answer lands) the first job is asked alone.
    """

    async def ask_everything(active: Endpoint) -> None:
        # The embedded llama.cpp server answers one request at a time, whatever --concurrency says, and keeps
        # the last prompt's prefix: requests that share one go back to back.
        concurrency = 1 if active.embedded else settings.effective_concurrency
        queue = prefix_order(jobs) if active.embedded else jobs
        async with make_client(active, settings, before_request=budget.admit) as client:
            await ask_all(queue, client, settings, on_answer, budget, concurrency, cleared)

    if endpoint is not None:
        asyncio.run(ask_everything(endpoint))
        return
    log_path = store.path.parent / "logs" / "embedded-server.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open_endpoint(settings, log_path) as active:
        asyncio.run(ask_everything(active))


def _ask_todo(
    todo: list[VerdictJob],
    settings: Settings,
    store: Store,
    writer: AnswerWriter,
    outcome: ReviewOutcome,
    endpoint: Endpoint | None,
    on_answer: Callable[[Answer], None] | None,
    cleared: Future[bool] | None,
) -> None:
    budget = RunBudget(settings.max_requests, settings.token_budget)

    def land(answer: Answer) -> None:
        writer.submit(answer)  # journaled with the next batch, off the event loop
        outcome.answers.append(answer)
        if on_answer:
            on_answer(answer)

    ask_jobs(todo, settings, store, budget, land, endpoint, cleared)
    outcome.endpoint_fault = budget.fault
    if (
        budget.fault
        or len(outcome.answers) < len(todo)
        or any(a.attempts[-1].status == "over_budget" for a in outcome.answers)
    ):
        outcome.stop_reason = budget.spent
