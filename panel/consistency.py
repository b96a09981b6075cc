"""Is the panel consistent? Re-ask a sample with the tools' order swapped and with names blinded; count verdicts
whose confidence or text contradicts their label; compare each persona's ship rate with the labelled base rate.

Every probe goes through the normal engine (review) as its own run, so it is stored and a rerun costs nothing.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from panel.answers import VerdictJob
from panel.ask import cache_key
from panel.cards import RunSpec, ToolCard, ToolPair, content_hash
from panel.config import Settings
from panel.cost import Prices, RunCost, run_cost
from panel.errors import CheckError
from panel.labels import base_rate
from panel.personas import build_messages
from panel.review import PreparedRun, prepare_run, review
from panel.store import AnsweredVerdict, GoldLabel, Store
from panel.vendor_text import CARD_LAYOUTS, PAIR_LAYOUT
from panel.verdict import CONTRADICTING_CONFIDENCE, verdict_schema

SWAPPED = "swapped"
BLINDED = "blinded"
BLIND_NAMES = ("Tool A", "Tool B")
_NEGATION = r"(?:not|never|don't|do not|wouldn't|would not|won't|cannot|can't)"
_VERDICT_WORD = re.compile(rf"\b(?:(?P<neg>{_NEGATION})\s+(?:\w+\s+){{0,2}}?)?(?P<word>ships?|skips?)\b", re.I)


def stated_verdict(text: str | None) -> str | None:
    """The verdict a review's last verdict-bearing sentence states ('ship'/'skip'), or None if absent or mixed."""
    for sentence in reversed(re.split(r"(?<=[.!?])\s+", (text or "").strip())):
        said = set()
        for match in _VERDICT_WORD.finditer(sentence):
            word = "ship" if match.group("word").lower().startswith("ship") else "skip"
            said.add(({"ship": "skip", "skip": "ship"}[word]) if match.group("neg") else word)
        if said:
            return said.pop() if len(said) == 1 else None
    return None


def contradiction(answer: AnsweredVerdict) -> str | None:
    """Why a valid verdict contradicts its own ship/skip label (low confidence, or text saying the opposite)."""
    if not answer.valid or answer.verdict is None:
        return None
    if answer.confidence is not None and answer.confidence < CONTRADICTING_CONFIDENCE:
        return f"confidence {answer.confidence:.2f} is below {CONTRADICTING_CONFIDENCE} for a {answer.verdict}"
    for part, text in (("headline", answer.headline), ("review", answer.review)):
        said = stated_verdict(text)
        if said and said != answer.verdict:
            return f"the {part} says {said} but the verdict is {answer.verdict}"
    return None


def swap_blocks(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """The messages with the two tools' cards in the user message in swapped order.

    In the pair layout (FIRST TOOL and SECOND TOOL blocks) the two blocks' contents trade places and the
    TOOL UNDER REVIEW block stays; in the older layout the TOOL UNDER REVIEW and RIVAL TOOL blocks trade places.
    """
    swapped = []
    for message in messages:
        if message["role"] != "user":
            swapped.append(message)
            continue
        lines = message["content"].splitlines()
        layout = next((found for found in CARD_LAYOUTS if all(d in lines for pair in found for d in pair)), None)
        if layout is None:
            raise CheckError("the user message lacks the BEGIN/END lines of its two tools' blocks: run `panel lint`")
        # The pair layout's block names say a position, so the cards trade places inside them; the older
        # layout's say a role (tool under review, rival), so the whole blocks trade places.
        inside = layout is PAIR_LAYOUT
        first, second = sorted(_block_span(lines, block, inside) for block in layout)
        if first[1] > second[0]:
            raise CheckError("the two tools' blocks of the user message overlap: run `panel lint`")
        lines = (
            lines[: first[0]]
            + lines[second[0] : second[1]]
            + lines[first[1] : second[0]]
            + lines[first[0] : first[1]]
            + lines[second[1] :]
        )
        swapped.append({**message, "content": "\n".join(lines)})
    return swapped


def _block_span(lines: list[str], delimiters: tuple[str, str], inside: bool) -> tuple[int, int]:
    """[start, end) of a block's lines: only those between its BEGIN and END lines when `inside`, else with them."""
    begin, end = lines.index(delimiters[0]), lines.index(delimiters[1])
    return (begin + 1, end) if inside else (begin, end + 1)


# Words of a tool's name too common to blind on their own ('Sonar Pro 2 API' blinds 'Sonar', not 'Pro' or 'API').
_COMMON_NAME_WORDS = frozenset(
    "the and for with pro plus max mini lite turbo api sdk cli app apps model models open cloud studio labs lab "
    "chat code search agent agents tool tools data vision voice edge flash large small base instruct".split()
)


def _name_pattern(name: str) -> re.Pattern[str]:
    """The name, each of its distinctive words, and a hyphenated word's stem ('SmolVLM2-2B' -> 'SmolVLM2'), as
    whole words: a card's text may call the tool by part of its name ('Sonar Pro 2' of 'Perplexity Sonar Pro 2')."""
    words = name.split()
    parts = set(words) | {re.split(r"[-_]", word)[0] for word in words}
    distinctive = {p for p in parts if len(p) >= 4 and p.casefold() not in _COMMON_NAME_WORDS}
    names = sorted({name} | distinctive, key=len, reverse=True)
    return re.compile(r"(?<!\w)(?:" + "|".join(re.escape(n) for n in names) + r")(?!\w)", re.I)


def blind_pair(pair: ToolPair) -> ToolPair:
    """The pair with both tools' names (and first words) replaced by 'Tool A'/'Tool B' everywhere, links dropped."""
    patterns = [(_name_pattern(card.name), label) for card, label in zip(pair.tools, BLIND_NAMES)]

    def blind(text: str) -> str:
        for pattern, label in patterns:
            text = pattern.sub(label, text)
        return text

    cards = []
    for card, label in zip(pair.tools, BLIND_NAMES):
        cards.append(
            ToolCard(
                name=label,
                category=card.category,
                tagline=blind(card.tagline),
                description=blind(card.description),
                pricing=card.pricing.model_copy(update={"details": blind(card.pricing.details)}),
                links={},
                flags=list(card.flags),
            )
        )
    return ToolPair(left=cards[0], right=cards[1])


@dataclass
class Probe:
    """One sampled verdict re-asked under a variant, next to the original answer."""

    persona_id: str
    tool_name: str
    variant: str
    original: AnsweredVerdict | None
    probe: AnsweredVerdict | None

    @property
    def compared(self) -> bool:
        """Both answers are valid verdicts."""
        return bool(self.original and self.probe and self.original.valid and self.probe.valid)

    @property
    def flipped(self) -> bool:
        """The variant changed the verdict."""
        original, probe = self.original, self.probe
        return self.compared and original is not None and probe is not None and original.verdict != probe.verdict


@dataclass
class PersonaConsistency:
    """One persona's consistency figures and what fails."""

    persona_id: str
    verdicts: int
    ship_rate: float | None
    base_rate: float | None
    flips: dict[str, tuple[int, int]]  # variant -> (flipped, compared)
    contradictions: list[tuple[str, str]]  # (tool name, reason)
    problems: list[str] = field(default_factory=list)

    def flip_rate(self, variant: str) -> float | None:
        """Share of compared probes of `variant` whose verdict flipped."""
        flipped, compared = self.flips.get(variant, (0, 0))
        return flipped / compared if compared else None


@dataclass
class ConsistencyReport:
    """What `panel check` found, per persona and for the panel as a whole."""

    run_id: str
    personas: list[PersonaConsistency]
    probes: list[Probe]
    panel_ship_rate: float | None
    panel_base_rate: float | None
    requests: int
    spent: RunCost  # the attempts this check made (cached answers cost it nothing)
    problems: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        """True when any persona or the panel fails a check."""
        return bool(self.problems or any(p.problems for p in self.personas))


def _variant_run(prepared: PreparedRun, sample: list[VerdictJob], variant: str, settings: Settings) -> PreparedRun:
    schema = verdict_schema()
    if variant == BLINDED:
        pairs = [blind_pair(pair) for pair in prepared.spec.pairs]
        jobs = []
        for job in sample:
            pair = pairs[job.pair_index]
            tool, rival = (
                pair.tools
                if job.tool.card_hash == prepared.spec.pairs[job.pair_index].left.card_hash
                else pair.tools[::-1]
            )
            messages = build_messages(job.persona, prepared.templates, tool, rival, schema, tool is pair.left)
            jobs.append(
                VerdictJob(
                    cache_key(messages, settings, settings.structured_mode),
                    job.pair_index,
                    job.persona,
                    tool,
                    rival,
                    messages,
                    job.template_hash,
                )
            )
        spec = RunSpec(path=prepared.spec.path, title=f"{prepared.spec.title} (check: names blinded)", pairs=pairs)
    else:
        jobs = [
            VerdictJob(
                cache_key(swap_blocks(job.messages), settings, settings.structured_mode),
                job.pair_index,
                job.persona,
                job.tool,
                job.rival,
                swap_blocks(job.messages),
                job.template_hash,
            )
            for job in sample
        ]
        spec = prepared.spec.model_copy(update={"title": f"{prepared.spec.title} (check: order swapped)"})
    run_id = content_hash({"check": variant, "of": prepared.run_id, "keys": [j.cache_key for j in jobs]})[:12]
    return PreparedRun(run_id, spec, prepared.personas, prepared.templates, jobs, purpose="check")


def _persona_figures(
    persona_id: str,
    answers: list[tuple[str, AnsweredVerdict | None]],
    probes: list[Probe],
    labels: list[GoldLabel],
    max_flip_rate: float,
    tolerance: float,
) -> PersonaConsistency:
    valid = [(tool, a) for tool, a in answers if a and a.valid]
    ship_rate = sum(a.verdict == "ship" for _, a in valid) / len(valid) if valid else None
    flips = {}
    for variant in (SWAPPED, BLINDED):
        mine = [p for p in probes if p.persona_id == persona_id and p.variant == variant and p.compared]
        flips[variant] = (sum(p.flipped for p in mine), len(mine))
    result = PersonaConsistency(
        persona_id,
        len(valid),
        ship_rate,
        base_rate(labels, persona_id),
        flips,
        [(tool, why) for tool, a in valid if (why := contradiction(a))],
    )
    for variant in (SWAPPED, BLINDED):
        rate = result.flip_rate(variant)
        if rate is not None and rate > max_flip_rate:
            result.problems.append(f"{variant} flip rate {rate:.0%} is over {max_flip_rate:.0%}")
    if result.contradictions:
        result.problems.append(f"{len(result.contradictions)} verdict(s) contradict their own label")
    result.problems.extend(_rate_problems(ship_rate, result.base_rate, len(valid), tolerance))
    return result


def _rate_problems(ship_rate: float | None, labelled: float | None, verdicts: int, tolerance: float) -> list[str]:
    if ship_rate is None or verdicts < 2:
        return []
    if ship_rate in (0.0, 1.0) and labelled is not None and labelled != ship_rate:
        said = "ships" if ship_rate == 1.0 else "skips"
        return [f"{said} everything while the labels ship {labelled:.0%}"]
    if labelled is not None and abs(ship_rate - labelled) > tolerance:
        return [f"ship rate {ship_rate:.0%} vs labelled base rate {labelled:.0%}"]
    return []


def _sample(jobs: list[VerdictJob], sample: int | None, seed: int) -> list[VerdictJob]:
    count = len(jobs) if sample is None else min(sample, len(jobs))
    chosen = set(random.Random(seed).sample(range(len(jobs)), count))
    return [job for index, job in enumerate(jobs) if index in chosen]


def check_runs(
    run_file: str | Path,
    settings: Settings,
    sample: int | None = None,
    seed: int = 7,
    persona_ids: list[str] | None = None,
) -> list[PreparedRun]:
    """The runs `check` asks, planned, nothing asked: the run, then its sample swapped, then blinded (what
    `panel check --batch` sends)."""
    # A probe unless the editor already reviewed exactly this run (begin_run keeps a review a review).
    prepared = replace(prepare_run(run_file, settings, persona_ids), purpose="check")
    sampled = _sample(prepared.jobs, sample, seed)
    return [prepared, *(_variant_run(prepared, sampled, variant, settings) for variant in (SWAPPED, BLINDED))]


def check(
    run_file: str | Path,
    settings: Settings,
    store: Store,
    sample: int | None = None,
    seed: int = 7,
    persona_ids: list[str] | None = None,
    max_flip_rate: float = 0.25,
    tolerance: float = 0.25,
) -> ConsistencyReport:
    """Review the run (cached answers reused), probe a sample swapped and blinded, and score consistency."""
    prepared, *variant_runs = check_runs(run_file, settings, sample, seed, persona_ids)
    reviewed = review(prepared, settings, store)
    if error := reviewed.endpoint_error():  # every probe would only meet it again
        raise error
    requests = reviewed.requests
    asked = list(reviewed.answers)
    original = store.answered_verdicts([j.cache_key for j in prepared.jobs])
    sampled = _sample(prepared.jobs, sample, seed)
    probes: list[Probe] = []
    for variant, variant_run in zip((SWAPPED, BLINDED), variant_runs):
        probed = review(variant_run, settings, store)
        requests += probed.requests
        asked += probed.answers
        answers = store.answered_verdicts([j.cache_key for j in variant_run.jobs])
        for job, probe in zip(sampled, variant_run.jobs):
            probes.append(
                Probe(job.persona.id, job.tool.name, variant, original.get(job.cache_key), answers.get(probe.cache_key))
            )
    labels = store.gold_labels()
    personas = [
        _persona_figures(
            p.id,
            [(j.tool.name, original.get(j.cache_key)) for j in prepared.jobs if j.persona.id == p.id],
            probes,
            labels,
            max_flip_rate,
            tolerance,
        )
        for p in prepared.personas
    ]
    valid = [a for a in original.values() if a.valid]
    panel_rate = sum(a.verdict == "ship" for a in valid) / len(valid) if valid else None
    report = ConsistencyReport(
        prepared.run_id, personas, probes, panel_rate, base_rate(labels), requests, run_cost(asked, Prices.of(settings))
    )
    report.problems = _rate_problems(panel_rate, report.panel_base_rate, len(valid), tolerance)
    hashes = {p.id: p.content_hash for p in prepared.personas}  # the trust block shows the latest check's flips
    store.add_check_flips(
        prepared.run_id,
        [(p.persona_id, hashes[p.persona_id], v, *p.flips[v]) for p in personas for v in (SWAPPED, BLINDED)],
    )
    return report
