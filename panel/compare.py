"""What does a prompt edit change? Run two versions of the personas/templates over the same pairs and score both.

A side is a set of persona texts plus template sources, from the working tree or from stored versions
(prompt_versions keeps every text once per hash). Each side runs through the normal engine (prepare_run,
review), so answers already in the cache cost no call: the unchanged side is usually free.
"""

from __future__ import annotations

import difflib
import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from panel.agreement import accuracy, balanced_accuracy, cohen_kappa
from panel.answers import Answer
from panel.cards import content_hash
from panel.config import Settings
from panel.cost import Prices, RunCost, dollars, price_text, run_cost
from panel.errors import CompareError
from panel.labels import labels_by_key
from panel.personas import PromptTemplates, load_personas, load_templates, parse_persona
from panel.render import CONTENT_SECURITY_POLICY
from panel.review import PreparedRun, ReviewOutcome, prepare_run, review
from panel.store import AnsweredVerdict, PromptVersion, Store
from panel.tally import percent
from panel.vendor_text import strip_hidden

WORKING_TREE = "working tree"
TEMPLATES = "templates"
MIN_REF_LENGTH = 4


@dataclass(frozen=True)
class PromptSet:
    """One side of a comparison: persona file texts by id, template sources, and where each came from."""

    personas: dict[str, str]
    templates: dict[str, str]
    origins: dict[str, str]  # persona id or "templates" -> "working tree" | "stored"

    def persona_hash(self, persona_id: str) -> str:
        """The content hash of this side's version of a persona."""
        return parse_persona(self.personas[persona_id], persona_id).content_hash

    @property
    def templates_hash(self) -> str:
        """The content hash of this side's template set."""
        return PromptTemplates("", self.templates).content_hash

    def describe(self, name: str) -> str:
        """'stored 3f2a9c1b' or 'working tree e81b07aa' for a persona id or 'templates'."""
        digest = self.templates_hash if name == TEMPLATES else self.persona_hash(name)
        return f"{self.origins[name]} {digest[:8]}"


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


def _working_set(settings: Settings) -> PromptSet:
    personas = {p.id: p.text for p in load_personas(settings.personas_dir)}
    templates = load_templates(settings.prompts_dir).sources
    return PromptSet(personas, templates, {**{p: WORKING_TREE for p in personas}, TEMPLATES: WORKING_TREE})


def resolve_version(versions: list[PromptVersion], ref: str) -> PromptVersion:
    """The stored version whose hash starts with `ref`; raise CompareError when none or several match."""
    if len(ref) < MIN_REF_LENGTH:
        raise CompareError(f"version '{ref}': give at least {MIN_REF_LENGTH} characters of the hash")
    found = [v for v in versions if v.content_hash.startswith(ref.lower())]
    if not found:
        raise CompareError(f"no stored persona or templates version starts with '{ref}' (see `panel personas`)")
    if len(found) > 1:
        raise CompareError(f"version '{ref}' is ambiguous: give more characters")
    return found[0]


def _with_version(side: PromptSet, version: PromptVersion) -> PromptSet:
    personas, templates = dict(side.personas), dict(side.templates)
    if version.kind == "persona":
        personas[version.name] = version.text
        name = version.name
    else:
        templates = json.loads(version.text)
        name = TEMPLATES
    return PromptSet(personas, templates, {**side.origins, name: "stored"})


def _latest_used(versions: list[PromptVersion], kind: str, name: str | None) -> PromptVersion | None:
    mine = [v for v in versions if v.kind == kind and (name is None or v.name == name)]
    # A version that produced verdicts beats one merely recorded; among those, the latest used wins.
    return max(mine, key=lambda v: (v.last_used_at is not None, v.last_used_at or v.first_seen_at), default=None)


def choose_sides(
    store: Store, settings: Settings, base_refs: list[str], candidate_refs: list[str], persona_ids: list[str] | None
) -> tuple[PromptSet, PromptSet, list[str]]:
    """Both sides and the personas to compare; the base defaults to each prompt's most recently used version."""
    versions = store.prompt_versions()
    candidate = _working_set(settings)
    for ref in candidate_refs:
        candidate = _with_version(candidate, resolve_version(versions, ref))
    base = candidate
    explicit = [resolve_version(versions, ref) for ref in base_refs]
    named = {v.name if v.kind == "persona" else TEMPLATES for v in explicit}
    for persona_id in candidate.personas:
        latest = _latest_used(versions, "persona", persona_id)
        if persona_id not in named and latest:
            base = _with_version(base, latest)
    latest_templates = _latest_used(versions, "templates", None)
    if TEMPLATES not in named and latest_templates:
        base = _with_version(base, latest_templates)
    for version in explicit:
        base = _with_version(base, version)
    unknown = [p for p in persona_ids or [] if p not in candidate.personas]
    if unknown:
        raise CompareError(f"unknown persona '{unknown[0]}' (have: {', '.join(sorted(candidate.personas))})")
    changed = [p for p in candidate.personas if base.personas.get(p) != candidate.personas[p]]
    compared = persona_ids or (list(candidate.personas) if base.templates != candidate.templates else changed)
    if not compared and not versions:
        raise CompareError("no stored prompt versions to compare with: run `panel review` first")
    if not compared:
        raise CompareError(
            "nothing changed: the working tree matches the latest stored versions; "
            "pass --base <hash> (see `panel personas`) or --persona"
        )
    return base, candidate, compared


def _materialise(side: PromptSet, personas: list[str], settings: Settings, folder: Path) -> Settings:
    """Settings whose personas/prompts folders hold this side's texts (the real folders when unchanged)."""
    working = _working_set(settings)
    changes: dict[str, Path] = {}
    if any(side.personas[p] != working.personas.get(p) for p in personas):
        changes["personas_dir"] = folder / "personas"
        changes["personas_dir"].mkdir(parents=True)
        for persona_id in personas:
            (folder / "personas" / f"{persona_id}.md").write_text(side.personas[persona_id], encoding="utf-8")
    if side.templates != working.templates:
        changes["prompts_dir"] = folder / "prompts"
        changes["prompts_dir"].mkdir(parents=True)
        for name, source in side.templates.items():
            (folder / "prompts" / name).write_text(source, encoding="utf-8")
    return settings.with_overrides(**changes)


@dataclass
class _SideRun:
    prepared: PreparedRun
    outcome: ReviewOutcome
    answers: dict[str, AnsweredVerdict]


def _run_side(
    run_file: Path,
    side: PromptSet,
    personas: list[str],
    settings: Settings,
    store: Store,
    folder: Path,
    on_answer: Callable[[Answer], None] | None,
) -> _SideRun:
    side_settings = _materialise(side, personas, settings, folder)
    prepared = replace(prepare_run(run_file, side_settings, personas), purpose="compare")
    outcome = review(prepared, side_settings, store, on_answer=on_answer)
    if error := outcome.endpoint_error():  # the other side and run files would only meet it again
        raise error
    return _SideRun(prepared, outcome, store.answered_verdicts([j.cache_key for j in prepared.jobs]))


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


def _finalize(value: object) -> object:
    # Every {{ value }} passes here: model text loses its control, bidi and zero-width characters as on the page,
    # but keeps its spacing (the page also folds spaces, which would bend the diffs). Markup too: `join` returns
    # escaped Markup, and removing such a character from escaped text cannot open a tag.
    if isinstance(value, Markup):
        return Markup(strip_hidden(value))
    return strip_hidden(value) if isinstance(value, str) else value


def _report_environment() -> Environment:
    # Same rules as the page: autoescape on, undefined is an error, and a CSP that allows no script.
    env = Environment(
        loader=PackageLoader("panel", "templates"),
        undefined=StrictUndefined,
        autoescape=select_autoescape(["html", "html.j2"], default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=_finalize,
    )
    env.filters["rate"] = lambda value: "—" if value is None else f"{value:.2f}"
    env.filters["percent"] = percent
    env.filters["dollars"] = dollars
    env.filters["price"] = price_text
    return env


def render_compare_html(comparison: Comparison) -> str:
    """The comparison as a self-contained HTML report (escaped like the page, no script)."""
    return (
        _report_environment()
        .get_template("compare.html.j2")
        .render(c=comparison, csp=CONTENT_SECURITY_POLICY, changes=comparison.changes(), diffs=comparison.diffs())
    )


def report_name(comparison: Comparison) -> str:
    """A stable file name for the report of this comparison: same sides and runs, same name."""
    digest = content_hash(
        {
            "before": [comparison.base.personas, comparison.base.templates],
            "after": [comparison.candidate.personas, comparison.candidate.templates],
            "runs": comparison.run_files,
            "personas": comparison.personas,
        }
    )
    return f"compare-{'-'.join(comparison.personas)[:40]}-{digest[:10]}.html"
