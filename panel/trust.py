"""How far to trust a reviewer: the evidence the page shows per persona, in words an editor reads in ten seconds.

Per persona version the run used: agreement with editors' labels (n, balanced accuracy, Cohen's kappa with a 95%
interval, or "too few labels"), the latest `panel check` flip rates, its ship rate against the labelled base rate
(with a warning when it ships far more than editors do); per verdict: how its jury voted and how stable its
samples were. Every line is plain text: the templates escape it like any other value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from panel.agreement import balanced_accuracy, cohen_kappa
from panel.jury import SPLIT, model_verdicts
from panel.labels import base_rate
from panel.store import CheckFlips, CorrectedRate, Store, StoredConsensus
from panel.tally import RunTally, percent

MIN_LABELS = 20  # below this many labelled tools, agreement figures are noise: the page says so instead
LENIENT_BY = 0.25  # ships this much more often than editors do (as `panel check`'s tolerance): a warning


@dataclass(frozen=True)
class TrustLine:
    """One line of the block: what it says, and whether it is a warning."""

    text: str
    warning: bool = False


@dataclass
class PersonaTrust:
    """The evidence for one persona on one page: lines about its version, and a line per tool's verdict."""

    persona_id: str
    lines: list[TrustLine] = field(default_factory=list)
    verdicts: dict[str, TrustLine] = field(default_factory=dict)  # tool id -> jury and sample stability


def kappa_interval(gold: list[str], predicted: list[str]) -> tuple[float, float] | None:
    """A 95% interval for Cohen's kappa (large-sample standard error), clipped to [-1, 1]; None when undefined."""
    n = len(gold)
    kappa = cohen_kappa(gold, predicted)
    if kappa is None or n < 2:
        return None
    observed = sum(g == p for g, p in zip(gold, predicted)) / n
    expected = sum(gold.count(label) * predicted.count(label) for label in set(gold)) / (n * n)
    error = math.sqrt(observed * (1 - observed) / (n * (1 - expected) ** 2))
    return max(-1.0, kappa - 1.96 * error), min(1.0, kappa + 1.96 * error)


def label_line(pairs: list[tuple[str, str]]) -> TrustLine:
    """Agreement with editors' labels of (label, verdict) pairs, or why there is too little to say."""
    if len(pairs) < MIN_LABELS:
        return TrustLine(f"Too few editor labels to judge its agreement: n = {len(pairs)} (needs {MIN_LABELS}).")
    gold, predicted = [g for g, _ in pairs], [p for _, p in pairs]
    accuracy = balanced_accuracy(gold, predicted)
    kappa, interval = cohen_kappa(gold, predicted), kappa_interval(gold, predicted)
    agreement = f"Agrees with editors on {len(pairs)} labelled tools: balanced accuracy {accuracy:.2f}"
    if kappa is None or interval is None:
        return TrustLine(
            agreement + ", kappa undefined (one side used one label only).",
            warning=accuracy is not None and accuracy <= 0.6,
        )
    return TrustLine(
        f"{agreement}, κ {kappa:.2f} (95% CI {interval[0]:.2f} to {interval[1]:.2f}).",
        warning=interval[0] <= 0,  # not distinguishable from chance
    )


def flip_line(found: CheckFlips | None) -> TrustLine:
    """The latest `panel check` flips of this version, or that it was never checked."""
    if found is None:
        return TrustLine("Not checked for order or name bias yet (panel check).")
    parts = []
    for variant, words in (("swapped", "swapping the tools' order"), ("blinded", "hiding the names")):
        flipped, compared = found.flips.get(variant, (0, 0))
        if compared:
            parts.append(f"{words} flips {flipped} of {compared} ({percent(flipped / compared)})")
    worst = max((f / c for f, c in found.flips.values() if c), default=0.0)
    text = "; ".join(parts) or "no probe compared"
    return TrustLine(f"Last check ({found.checked_at:%Y-%m-%d}): {text}.", warning=worst > 0.25)


def rate_line(ship_rate: float | None, verdicts: int, labelled_rate: float | None) -> TrustLine:
    """Its ship rate against the labelled base rate, a warning when it ships far more than editors do."""
    if ship_rate is None:
        return TrustLine("No ship rate yet.")
    said = f"Ships {percent(ship_rate)} of {verdicts} tools"
    if labelled_rate is None:
        return TrustLine(f"{said}; no editor labels to compare with.")
    lenient = ship_rate - labelled_rate > LENIENT_BY
    warning = " — far more often than editors: read its ships with care" if lenient else ""
    return TrustLine(f"{said}; editors ship {percent(labelled_rate)}{warning}.", warning=lenient)


def verdict_line(found: StoredConsensus) -> TrustLine:
    """How a jury voted and how stable each model's samples were, e.g. "Models: a ship (3 of 3 samples), ..."."""
    models = model_verdicts(found.votes)
    parts = []
    for model, verdict in models.items():
        samples = [v.verdict for v in found.votes if v.member == model]
        agreeing = sum(1 for v in samples if v == verdict)
        said = {None: "abstained (no valid answer)", SPLIT: "split"}.get(verdict, verdict or "")
        stability = (
            f" ({agreeing} of {len(samples)} samples)" if len(samples) > 1 and verdict not in (None, SPLIT) else ""
        )
        if verdict == SPLIT:
            stability = f" ({sum(v == 'ship' for v in samples)} ship, {sum(v == 'skip' for v in samples)} skip)"
        parts.append(f"{model} {said}{stability}" if len(models) > 1 else f"{said}{stability}")
    outcome = {None: "every model abstained", SPLIT: "no majority"}.get(found.verdict, f"majority {found.verdict}")
    head = "Jury: " if len(models) > 1 else "Samples: "
    return TrustLine(f"{head}{', '.join(parts)} — {outcome}.", warning=found.verdict in (None, SPLIT))


def run_trust(store: Store, tally: RunTally) -> dict[str, PersonaTrust]:
    """The evidence block of every persona of a tallied run (persona version = the one the run used)."""
    hashes = {p: tally.run.persona_hashes[p] for p in tally.personas if p in tally.run.persona_hashes}
    labelled = store.labelled_answers(list(hashes.values()))
    flips = store.latest_check_flips(list(hashes.values()))
    rates = store.persona_version_rates(list(hashes.values()))
    labels = store.gold_labels()
    found: dict[str, PersonaTrust] = {}
    for persona_id, persona_hash in hashes.items():
        ship_rate, verdicts = rates.get(persona_hash, (None, 0))
        entry = PersonaTrust(
            persona_id,
            [
                label_line(labelled.get(persona_hash, [])),
                flip_line(flips.get(persona_hash)),
                rate_line(ship_rate, verdicts, base_rate(labels, persona_id)),
            ],
        )
        for pair in tally.pairs:
            for side in pair.tools:
                if persona_id in side.consensus:
                    entry.verdicts[side.tool_id] = verdict_line(side.consensus[persona_id])
        found[persona_id] = entry
    return found


def corrected_rate_line(rate: CorrectedRate) -> str:
    """One persona version's judged, labelled and prediction-powered ship rates, as `panel compare` prints them."""
    head = (
        f"{rate.persona_id} v{rate.persona_version} ({rate.persona_hash[:8]}): judged ship "
        f"{percent(rate.judged_rate)} of {rate.verdicts} tools"
    )
    if not rate.labels:
        return f"{head}; no editor labels, so no corrected rate"
    corrected = f"corrected {percent(rate.corrected_rate)}"
    if rate.corrected_low is not None and rate.corrected_high is not None:
        corrected += f" (95% CI {percent(rate.corrected_low)}–{percent(rate.corrected_high)}"
        corrected += f"; labels alone ±{percent(rate.labels_margin)})" if rate.labels_margin is not None else ")"
    return f"{head}, labelled {percent(rate.labelled_rate)} of {rate.labels}, {corrected}"
