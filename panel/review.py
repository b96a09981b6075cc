"""Review a run file: validate and render every prompt, ask what is missing concurrently, store each answer as it lands."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import openai

from panel.ask import Answer, VerdictJob, ask_verdict, plan_run
from panel.cards import RunSpec, content_hash, load_run
from panel.config import Settings
from panel.endpoints import Endpoint, get_mode, make_client, open_endpoint
from panel.personas import Persona, PromptTemplates, load_personas, load_templates
from panel.store import Store


@dataclass
class ReviewOutcome:
    """What a review did: the run id, how many verdicts were needed, cached, asked, and failed."""

    run_id: str
    needed: int
    cached: int
    answers: list[Answer] = field(default_factory=list)
    status: str = "finished"

    @property
    def asked(self) -> int:
        """Verdicts requested from the model in this invocation."""
        return len(self.answers)

    @property
    def failed(self) -> int:
        """Verdicts that got no valid answer after every re-ask."""
        return sum(1 for a in self.answers if a.verdict is None)

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


def prepare_run(run_file: str | Path, settings: Settings, persona_ids: list[str] | None = None) -> PreparedRun:
    """Load the run file, personas and templates and render every prompt; raise on the first error."""
    spec = load_run(run_file)
    personas = load_personas(settings.personas_dir, persona_ids)
    templates = load_templates(settings.prompts_dir)
    get_mode(settings.structured_mode)
    jobs = plan_run(spec, personas, templates, settings)
    run_id = content_hash({"run": spec.model_dump(mode="json"), "keys": [j.cache_key for j in jobs]})[:12]
    return PreparedRun(run_id, spec, personas, templates, jobs)


async def _ask_all(jobs: list[VerdictJob], client: openai.AsyncOpenAI, settings: Settings,
                   on_answer: Callable[[Answer], None]) -> None:
    mode = get_mode(settings.structured_mode)
    gate = asyncio.Semaphore(settings.effective_concurrency)

    async def one(job: VerdictJob) -> None:
        async with gate:
            answer = await ask_verdict(client, job, settings, mode)
        on_answer(answer)  # stored at once: a crash later loses nothing already answered

    await asyncio.gather(*(one(job) for job in jobs))


def review(prepared: PreparedRun, settings: Settings, store: Store, refresh: bool = False,
           endpoint: Endpoint | None = None,
           on_answer: Callable[[Answer], None] | None = None) -> ReviewOutcome:
    """Ask for every verdict the run lacks (all of them with `refresh`) and store each one."""
    store.acquire_writer()
    try:
        store.begin_run(prepared.run_id, prepared.spec, settings, prepared.personas,
                        prepared.templates, prepared.jobs)
        done = set() if refresh else store.answered_keys([j.cache_key for j in prepared.jobs])
        todo = [j for j in prepared.jobs if j.cache_key not in done]
        outcome = ReviewOutcome(prepared.run_id, len(prepared.jobs), len(prepared.jobs) - len(todo))
        status = "stopped"
        try:
            if todo:
                _ask_todo(todo, prepared, settings, store, outcome, endpoint, on_answer)
            status = "incomplete" if outcome.failed else "finished"
        finally:
            outcome.status = status
            store.finish_run(prepared.run_id, status)
        return outcome
    finally:
        store.release_writer()


def _ask_todo(todo: list[VerdictJob], prepared: PreparedRun, settings: Settings, store: Store,
              outcome: ReviewOutcome, endpoint: Endpoint | None,
              on_answer: Callable[[Answer], None] | None) -> None:
    def save(answer: Answer) -> None:
        store.save_answer(prepared.run_id, answer, settings)
        outcome.answers.append(answer)
        if on_answer:
            on_answer(answer)

    async def main(active: Endpoint) -> None:
        client = make_client(active, settings)
        async with client:
            await _ask_all(todo, client, settings, save)

    if endpoint is not None:
        asyncio.run(main(endpoint))
        return
    log_path = store.path.parent / "logs" / "embedded-server.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open_endpoint(settings, log_path) as active:
        asyncio.run(main(active))
