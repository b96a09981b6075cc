"""What does a prompt edit change? Run both sides (compare_sides.py) over the same pairs and score each persona.

Each side runs through the normal engine (prepare_run, review), so answers already in the cache cost no call:
the unchanged side is usually free. The HTML report is compare_report.py.
"""

from __future__ import annotations

import difflib
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

from panel.agreement import accuracy, balanced_accuracy, cohen_kappa
from panel.answers import Answer
from panel.compare_sides import TEMPLATES, PromptSet, choose_sides, materialise
from panel.config import Settings
from panel.cost import Prices, RunCost, run_cost
from panel.labels import labels_by_key
from panel.review import PreparedRun, ReviewOutcome, prepare_run, review
from panel.store import AnsweredVerdict, Store


@dataclass
class ComparedVerdict:
    """One persona's verdict on one tool before and after the change, with the gold label if any."""

    persona_id: str
    tool_name: str
    rival_name: str
    before: AnsweredVerdict | None
    after: AnsweredVerdict | None
    gold: str | None

    @property
    def flipped(self) -> bool:
        """True when both sides gave a valid verdict and they differ."""
        return bool(
            self.before
            and self.after
            and self.before.valid
            and self.after.valid
            and self.before.verdict != self.after.verdict
        )


@dataclass
class SideStats:
    """One persona's figures on one side: ship rate, agreement with gold labels, confidence, tokens, cost.

    `cost` is what this side's answers cost at the current prices (cached or not: the price of the prompt version),
    None when a price is unknown; what the comparison itself spent is Comparison.spent.
    """

    verdicts: int
    invalid: int
    ship_rate: float | None
    labelled: int
    accuracy: float | None
    balanced_accuracy: float | None
    kappa: float | None
    mean_confidence: float | None
    tokens: int
    cost: float | None


@dataclass
class Comparison:
    """The result of `panel compare`: per-persona figures before/after, the flips, and the calls it cost."""

    base: PromptSet
    candidate: PromptSet
    personas: list[str]
    run_files: list[str]
    items: list[ComparedVerdict]
    before: dict[str, SideStats]
    after: dict[str, SideStats]
    requests: dict[str, int]
    prices: Prices
    spent: RunCost  # the attempts this comparison made (cached answers cost it nothing)
    created_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    @property
    def flips(self) -> list[ComparedVerdict]:
        """Verdicts whose ship/skip changed, in persona then tool order."""
        return [item for item in self.items if item.flipped]

    def changes(self) -> list[tuple[str, str, str]]:
        """(persona id or 'templates', before, after) for each version that differs between the sides."""
        names = [p for p in self.personas if self.base.personas[p] != self.candidate.personas[p]]
        if self.base.templates != self.candidate.templates:
            names.append(TEMPLATES)
        return [(n, self.base.describe(n), self.candidate.describe(n)) for n in names]

    def diffs(self) -> dict[str, str]:
        """A unified diff of each changed persona file or template, for the report."""
        diffs: dict[str, str] = {}
        for name, _, _ in self.changes():
            pairs = (
                [(f"{name}.md", self.base.personas[name], self.candidate.personas[name])]
                if name != TEMPLATES
                else [
                    (t, self.base.templates.get(t, ""), self.candidate.templates.get(t, ""))
                    for t in sorted(set(self.base.templates) | set(self.candidate.templates))
                ]
            )
            for file_name, old, new in pairs:
                lines = difflib.unified_diff(
                    old.splitlines(), new.splitlines(), f"before/{file_name}", f"after/{file_name}", lineterm=""
                )
                text = "\n".join(lines)
                if text:
                    diffs[file_name] = text
        return diffs


@dataclass
class _SideRun:
    prepared: PreparedRun
    outcome: ReviewOutcome
    answers: dict[str, AnsweredVerdict]


def _prepare_side(
    run_file: Path, side: PromptSet, personas: list[str], settings: Settings, folder: Path
) -> tuple[PreparedRun, Settings]:
    side_settings = materialise(side, personas, settings, folder)
    return replace(prepare_run(run_file, side_settings, personas), purpose="compare"), side_settings


def _run_side(
    run_file: Path,
    side: PromptSet,
    personas: list[str],
    settings: Settings,
    store: Store,
    folder: Path,
    on_answer: Callable[[Answer], None] | None,
) -> _SideRun:
    prepared, side_settings = _prepare_side(run_file, side, personas, settings, folder)
    outcome = review(prepared, side_settings, store, on_answer=on_answer)
    if error := outcome.endpoint_error():  # the other side and run files would only meet it again
        raise error
    return _SideRun(prepared, outcome, store.answered_verdicts([j.cache_key for j in prepared.jobs]))


def compare_runs(
    run_files: list[Path],
    settings: Settings,
    store: Store,
    base_refs: list[str] | None = None,
    candidate_refs: list[str] | None = None,
    persona_ids: list[str] | None = None,
) -> list[PreparedRun]:
    """Every run `compare` asks with these arguments (both sides of each run file), planned, nothing asked:
    what `panel compare --batch` sends. Raises CompareError as compare does."""
    base, candidate, personas = choose_sides(store, settings, base_refs or [], candidate_refs or [], persona_ids)
    runs = []
    with tempfile.TemporaryDirectory(prefix="panel-compare-") as tmp:  # the jobs keep their rendered messages
        for index, run_file in enumerate(run_files):
            for name, side in (("before", base), ("after", candidate)):
                runs.append(_prepare_side(run_file, side, personas, settings, Path(tmp) / f"{index}-{name}")[0])
    return runs


def side_stats(items: list[ComparedVerdict], after: bool, prices: Prices) -> SideStats:
    """Figures for one side of these items (one persona's, typically)."""
    answers = [(item, item.after if after else item.before) for item in items]
    valid = [(item, a) for item, a in answers if a and a.valid]
    labelled = [(item.gold, a.verdict) for item, a in valid if item.gold and a.verdict is not None]
    gold, predicted = [g for g, _ in labelled], [p for _, p in labelled]
    confidences = [a.confidence for _, a in valid if a.confidence is not None]
    prompt = sum(a.prompt_tokens for _, a in answers if a)
    completion = sum(a.completion_tokens for _, a in answers if a)
    return SideStats(
        verdicts=len(valid),
        invalid=len(answers) - len(valid),
        ship_rate=sum(a.verdict == "ship" for _, a in valid) / len(valid) if valid else None,
        labelled=len(labelled),
        accuracy=accuracy(gold, predicted),
        balanced_accuracy=balanced_accuracy(gold, predicted),
        kappa=cohen_kappa(gold, predicted),
        mean_confidence=sum(confidences) / len(confidences) if confidences else None,
        tokens=prompt + completion,
        cost=prices.cost(prompt, completion),
    )


def compare(
    run_files: list[Path],
    settings: Settings,
    store: Store,
    base_refs: list[str] | None = None,
    candidate_refs: list[str] | None = None,
    persona_ids: list[str] | None = None,
    on_answer: Callable[[Answer], None] | None = None,
) -> Comparison:
    """Run both sides over every pair of `run_files` (cached answers reused) and score each persona.

    Costs use the settings' prices (Prices.of).
    """
    base, candidate, personas = choose_sides(store, settings, base_refs or [], candidate_refs or [], persona_ids)
    prices = Prices.of(settings)
    gold = labels_by_key(store.gold_labels())
    items: list[ComparedVerdict] = []
    requests = {"before": 0, "after": 0}
    asked: list[Answer] = []
    with tempfile.TemporaryDirectory(prefix="panel-compare-") as tmp:
        for index, run_file in enumerate(run_files):
            before = _run_side(run_file, base, personas, settings, store, Path(tmp) / f"{index}-before", on_answer)
            after = _run_side(run_file, candidate, personas, settings, store, Path(tmp) / f"{index}-after", on_answer)
            requests["before"] += before.outcome.requests
            requests["after"] += after.outcome.requests
            asked += before.outcome.answers + after.outcome.answers
            before_jobs = {(j.pair_index, j.tool.card_hash, j.persona.id): j for j in before.prepared.jobs}
            for job in after.prepared.jobs:
                old = before_jobs[(job.pair_index, job.tool.card_hash, job.persona.id)]
                items.append(
                    ComparedVerdict(
                        job.persona.id,
                        job.tool.name,
                        job.rival.name,
                        before.answers.get(old.cache_key),
                        after.answers.get(job.cache_key),
                        gold.get((job.tool.name, job.persona.id)),
                    )
                )
    items.sort(key=lambda item: personas.index(item.persona_id))
    by_persona = {p: [item for item in items if item.persona_id == p] for p in personas}
    return Comparison(
        base,
        candidate,
        personas,
        [str(f) for f in run_files],
        items,
        {p: side_stats(by_persona[p], False, prices) for p in personas},
        {p: side_stats(by_persona[p], True, prices) for p in personas},
        requests,
        prices,
        run_cost(asked, prices),
    )
