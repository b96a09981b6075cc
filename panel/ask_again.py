"""Ask again: re-ask one reviewer (or the chair) about one item of a stored run, keep the answer as a new version.

The question is the one `panel review` would ask now (the project's persona files and templates, the stored
cards, the same settings, endpoint, mode, validation and re-asks, through review.ask_jobs), with the editor's
note, if any, appended as its own user message after the vendor-delimited one ("Editor's note: ..."; never in the
system role, cleaned and capped like vendor text so it cannot forge a prompt delimiter). The answer is stored
like any verdict, under a cache key of its own (the question's, note included, marked as an ask-again), and
recorded as the item's next version (store/versions.py); the model's original and every earlier version stay.
The page keeps showing the version picked last (the original until an editor picks another): `use` picks the
new one at once, use_version any. Asking the same note again is cached (no model call) unless `force`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from pydantic import BaseModel

from panel.answer_kinds import CHAIR_ID, ChairSummary
from panel.answers import Answer, VerdictJob
from panel.ask import RunBudget, cache_key
from panel.cards import content_hash
from panel.chair import chair_jobs, chair_persona
from panel.config import Settings
from panel.cost import Prices, RunCost, run_cost
from panel.errors import AskAgainError
from panel.model.endpoint import Endpoint
from panel.overrides import OverrideTarget, find_target
from panel.personas import build_messages, load_personas, load_templates
from panel.review import ask_jobs
from panel.store import AnswerVersion, Store, StoredRun
from panel.tally import tally_run
from panel.vendor_text import clean_vendor_text
from panel.verdict import Verdict, verdict_schema

NOTE_LIMIT = 1000  # characters of an editor's note; longer ones are cut and marked, like vendor text
NOTE_PREFIX = "Editor's note: "


@dataclass(frozen=True)
class AskAgainRequest:
    """What an editor asks: whom (persona id or 'chair') about which tool or pair, with what note."""

    persona_id: str
    editor: str
    tool_ref: str | None = None  # the tool's name on the page, or a tool id prefix of 6 or more characters
    pair_number: int | None = None  # 1-based; the chair takes it alone
    note: str | None = None
    use: bool = False  # pick the new version for the page at once
    force: bool = False  # ask even when this very question (same note) was answered before


@dataclass(frozen=True)
class AskAgainOutcome:
    """What ask_again stored: the version's number, whether it is new, and the answer when the model was asked."""

    version: int
    created: bool  # False: this answer was already that version (the same note asked again, cached)
    cached: bool  # True: no model call, the question had a stored answer
    picked: bool  # the page uses this version now
    target: OverrideTarget
    answer: Answer | None = field(repr=False)  # None when cached
    prices: Prices = field(repr=False)

    @property
    def cost(self) -> RunCost:
        """What the request cost (nothing when cached)."""
        return run_cost([self.answer] if self.answer else [], self.prices)


def editor_note(text: str) -> str:
    """The note as it is sent: hidden characters and forged prompt delimiters removed, spaces folded, capped.

    Raises AskAgainError when nothing is left.
    """
    cleaned = clean_vendor_text(text, "note", NOTE_LIMIT, single_line=False).text
    if not cleaned:
        raise AskAgainError("--note is empty once invisible characters and spaces are removed")
    return cleaned


def ask_again_job(
    run: StoredRun, target: OverrideTarget, persona_id: str, note: str | None, settings: Settings
) -> VerdictJob:
    """The job that asks `persona_id` again about `target` of `run`, the cleaned `note` after the vendor text.

    Raises PersonaError for a broken persona file or template, AskAgainError for an unknown persona.
    """
    templates = load_templates(settings.prompts_dir)
    answer_model: type[BaseModel]
    if persona_id == CHAIR_ID:
        tally = tally_run(run)
        found = [job for job in chair_jobs(tally, templates, settings) if job.pair_index == target.pair_index]
        if not found:
            raise AskAgainError(f"--persona: {target.subject} has no valid reviewer verdict for the chair to read")
        job = found[0]
        messages, persona, answer_model = job.messages, chair_persona(templates), ChairSummary
        tool, rival = job.tool, job.rival
    else:
        persona = load_personas(settings.personas_dir, [persona_id])[0]
        left, right = run.pairs[target.pair_index]
        tool, rival = (left, right) if run.tool_ids[target.pair_index][0] == target.tool_id else (right, left)
        messages = build_messages(persona, templates, tool, rival, verdict_schema(), tool is left)
        answer_model = Verdict
    if note is not None:
        messages = [*messages, {"role": "user", "content": NOTE_PREFIX + note}]
    # The question's own key, marked: without a note it is the review's question, whose answer is the original.
    key = content_hash({"ask_again": cache_key(messages, settings, settings.structured_mode, answer_model)})
    return VerdictJob(key, target.pair_index, persona, tool, rival, messages, templates.content_hash, answer_model)


def _target(
    store: Store, run_id: str, tool_ref: str | None, persona_id: str, pair_number: int | None
) -> tuple[StoredRun, OverrideTarget]:
    run = store.load_run(run_id)
    target = find_target(run, tool_ref, persona_id, pair_number)
    if persona_id not in run.persona_ids:
        raise AskAgainError(f"--persona: run {run_id} has no '{persona_id}' (it asked: {', '.join(run.persona_ids)})")
    return run, target


def ask_again(
    store: Store,
    run_id: str,
    request: AskAgainRequest,
    settings: Settings,
    *,
    endpoint: Endpoint | None = None,
) -> AskAgainOutcome:
    """Ask `request.persona_id` again about one item of run `run_id`, store the answer as the item's next version.

    Holds the writer lock while it asks and stores (StoreError at once while another process writes). An answer
    that does not come (the endpoint down, a refused key, validation exhausted, a spent budget) raises
    AskAgainError with its one-line reason and stores nothing. Raises OverrideError for an unknown tool or pair.
    """
    note = editor_note(request.note) if request.note is not None else None
    run, target = _target(store, run_id, request.tool_ref, request.persona_id, request.pair_number)
    job = ask_again_job(run, target, request.persona_id, note, settings)
    with store.writing():
        known = None if request.force else store.answered_verdicts([job.cache_key]).get(job.cache_key)
        answer = None
        if known is None or not known.valid:
            answer = _ask(job, settings, store, endpoint)
            store.save_answers(run_id, [answer], settings)
        number, created = store.add_version(
            run_id,
            target.pair_index,
            target.tool_id,
            request.persona_id,
            job.cache_key,
            editor=request.editor,
            note=note,
            use=request.use,
        )
    return AskAgainOutcome(number, created, answer is None, request.use, target, answer, Prices.of(settings))


def _ask(job: VerdictJob, settings: Settings, store: Store, endpoint: Endpoint | None) -> Answer:
    """The valid answer to `job`, asked as `panel review` asks; AskAgainError with the reason when there is none."""
    answers: list[Answer] = []
    budget = RunBudget(settings.max_requests, settings.token_budget)
    ask_jobs([job], settings, store, budget, answers.append, endpoint)
    if not answers:
        raise AskAgainError(f"not asked: {budget.spent or 'the budget allows no request'}")
    answer = answers[0]
    if answer.verdict is None:
        attempts = f"{len(answer.attempts)} attempt{'s' if len(answer.attempts) != 1 else ''}"
        raise AskAgainError(answer.fault or f"no valid answer after {attempts} ({answer.failure}); nothing stored")
    return answer


def answer_versions(
    store: Store, run_id: str, persona_id: str, tool_ref: str | None = None, pair_number: int | None = None
) -> tuple[list[AnswerVersion], OverrideTarget]:
    """Every answer version of one item (the original, 0, first; `picked` marks the one the page uses) and the item.

    Raises OverrideError or AskAgainError when the run has no such tool, pair or persona.
    """
    _, target = _target(store, run_id, tool_ref, persona_id, pair_number)
    return store.versions(run_id, target.pair_index, target.tool_id, persona_id), target


def use_version(
    store: Store,
    run_id: str,
    persona_id: str,
    number: int,
    editor: str,
    tool_ref: str | None = None,
    pair_number: int | None = None,
) -> tuple[AnswerVersion, OverrideTarget]:
    """Make version `number` (0: the model's original) the one the page uses for this item; return it and the item.

    An override of the item still applies on top. Raises AskAgainError for a version the item does not have,
    StoreError while another process writes the database.
    """
    versions, target = answer_versions(store, run_id, persona_id, tool_ref, pair_number)
    chosen = next((version for version in versions if version.number == number), None)
    if chosen is None:
        numbers = ", ".join(str(version.number) for version in versions) or "none"
        raise AskAgainError(f"--version: {target.subject} has no version {number} (versions: {numbers})")
    with store.writing():
        store.pick_version(run_id, target.pair_index, target.tool_id, persona_id, number, editor=editor)
    return replace(chosen, picked=True), target
