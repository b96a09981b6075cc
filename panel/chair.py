"""The panel chair: one extra call per pair that reads the reviewers' stored verdicts and writes the page's summary.

The chair never sees the vendor's description: only tool names, the split and the eight verdicts. Its answer
is stored like any verdict (persona id 'chair', a run_items row, cached by its messages' hash), so a rerun
reuses it and an editor can override it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

from panel.answer_kinds import CHAIR_ID, PICKS, ChairSummary
from panel.answers import Answer, VerdictJob
from panel.ask import RunBudget, cache_key
from panel.config import Settings
from panel.errors import PersonaError
from panel.model.endpoint import Endpoint
from panel.personas import Persona, PromptTemplates, load_templates, render_template
from panel.review import ReviewOutcome, ask_jobs
from panel.store import FOLD_WAIT_S, AnswerWriter, Store
from panel.tally import PairTally, RunTally, ToolTally, tally_run

CHAIR_SYSTEM_TEMPLATE = "chair_system.j2"
CHAIR_USER_TEMPLATE = "chair_user.j2"
# Each review is cut to this in the chair's prompt: eight whole reviews crowd the embedded model's 4,096 tokens.
REVIEW_EXCERPT_CHARS = 600


@dataclass
class ChairOutcome:
    """What the chair step did: summaries needed, cached and asked, and the answers it got."""

    needed: int
    cached: int
    answers: list[Answer] = field(default_factory=list)
    stop_reason: str | None = None  # the run's budget ran out before every summary was asked
    endpoint_fault: str | None = None  # the endpoint cannot answer (bad key, unknown model): what to fix

    @property
    def failed(self) -> int:
        """Summaries that got no valid answer after every re-ask (not counting those the budget cut short)."""
        return sum(1 for a in self.answers if a.verdict is None and a.attempts[-1].status != "over_budget")

    @property
    def not_asked(self) -> int:
        """Summaries the budget left unasked or cut short: a rerun asks them."""
        return self.needed - self.cached - sum(1 for a in self.answers if a.verdict is not None) - self.failed


def chair_persona(templates: PromptTemplates) -> Persona:
    """The chair as a Persona record, versioned by the hash of its two templates; PersonaError if one is missing."""
    for name in (CHAIR_SYSTEM_TEMPLATE, CHAIR_USER_TEMPLATE):
        if name not in templates.sources:
            raise PersonaError(f"{Path(templates.folder) / name}: prompt template not found")
    text = json.dumps(
        {name: templates.sources[name] for name in (CHAIR_SYSTEM_TEMPLATE, CHAIR_USER_TEMPLATE)},
        sort_keys=True,
        ensure_ascii=False,
    )
    return Persona(
        CHAIR_ID,
        "Chair",
        "Panel chair",
        "reads the four reviewers' verdicts and says which tool the panel would ship with",
        "",
        str(Path(templates.folder) / CHAIR_SYSTEM_TEMPLATE),
        text,
    )


def _excerpt(text: str | None) -> str:
    text = (text or "").strip()
    return text if len(text) <= REVIEW_EXCERPT_CHARS else text[:REVIEW_EXCERPT_CHARS].rstrip() + " […]"


def _side_variables(side: ToolTally) -> dict[str, object]:
    return {"name": side.tool.name, "ship": len(side.ship), "skip": len(side.skip), "missing": len(side.missing)}


def chair_messages(pair: PairTally, personas: list[str], templates: PromptTemplates) -> list[dict[str, str]]:
    """The chair's chat messages for one pair: rules in system, the reviewers' verdicts (as data) in user."""
    verdicts = []
    for persona_id in personas:
        for side_name, side in (("left", pair.left), ("right", pair.right)):
            verdict = side.verdicts.get(persona_id)
            verdicts.append(
                {
                    "persona": persona_id,
                    "side": side_name,
                    "verdict": verdict.verdict if verdict else None,
                    "confidence": f"{verdict.confidence:.2f}" if verdict and verdict.confidence is not None else "n/a",
                    "headline": (verdict.headline or "") if verdict else "",
                    "review": _excerpt(verdict.review) if verdict else "",
                }
            )
    system = render_template(templates, CHAIR_SYSTEM_TEMPLATE, {"picks": list(PICKS)})
    user = render_template(
        templates,
        CHAIR_USER_TEMPLATE,
        {"left": _side_variables(pair.left), "right": _side_variables(pair.right), "verdicts": verdicts},
    )
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def chair_jobs(tally: RunTally, templates: PromptTemplates, settings: Settings) -> list[VerdictJob]:
    """One chair job per pair that has at least one valid reviewer verdict."""
    persona = chair_persona(templates)
    jobs: list[VerdictJob] = []
    for pair in tally.pairs:
        if not (pair.left.verdicts or pair.right.verdicts):
            continue
        messages = chair_messages(pair, tally.personas, templates)
        key = cache_key(messages, settings, settings.structured_mode, ChairSummary)
        jobs.append(
            VerdictJob(
                key,
                pair.index,
                persona,
                pair.left.tool,
                pair.right.tool,
                messages,
                templates.content_hash,
                answer_model=ChairSummary,
            )
        )
    return jobs


def summarize_run(
    store: Store,
    run_id: str,
    settings: Settings,
    refresh: bool = False,
    endpoint: Endpoint | None = None,
    on_answer: Callable[[Answer], None] | None = None,
    after: ReviewOutcome | None = None,
    cleared: Future[bool] | None = None,
) -> ChairOutcome:
    """Ask the chair for every pair summary the run lacks (all with `refresh`) and store each as it lands.

    `after` is the review this follows: what it spent counts against the run's request and token budget.
    `cleared` True lets the first wave go out whole (review.ask_jobs); else the first summary is asked alone.
    Raises StoreError when another process is writing the database, PersonaError for a broken chair template.
    """
    run = store.load_run(run_id)
    if run.status == "stopped":  # a budget or Ctrl-C stopped the reviewers: spend nothing more
        return ChairOutcome(0, 0)
    jobs = chair_jobs(tally_run(run), load_templates(settings.prompts_dir), settings)
    if not jobs:
        return ChairOutcome(0, 0)
    budget = RunBudget(
        settings.max_requests, settings.token_budget, after.requests if after else 0, after.tokens if after else 0
    )
    store.acquire_writer()
    try:
        done = set() if refresh else store.answered_keys([job.cache_key for job in jobs])
        todo = [job for job in jobs if job.cache_key not in done]
        outcome = ChairOutcome(len(jobs), len(jobs) - len(todo))
        # Like the reviewers' answers: through the journal, off the event loop; the run's status is not the chair's.
        with AnswerWriter(
            store,
            run_id,
            settings,
            status_on_error=None,
            first=lambda: store.add_run_items(run_id, jobs, prompt_kind=CHAIR_ID, wait_s=FOLD_WAIT_S),
        ) as writer:

            def land(answer: Answer) -> None:
                writer.submit(answer)
                outcome.answers.append(answer)
                if on_answer:
                    on_answer(answer)

            if todo:
                ask_jobs(todo, settings, store, budget, land, endpoint, cleared)
        outcome.endpoint_fault = budget.fault
        if outcome.not_asked:
            outcome.stop_reason = budget.spent or "the run's budget was spent"
        return outcome
    finally:
        store.release_writer()
