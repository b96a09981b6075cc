"""Which confidence separates the editors' ship from skip better: the model's own, or its verdict token's probability.

Each confidence is read as a score for "ship" (the confidence of a ship, one minus it for a skip) and scored by
its AUC against the gold labels: 1.0 ranks every labelled ship above every labelled skip, 0.5 is chance. Both are
scored on the same verdicts, those with a label and both confidences, so their n is the same.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from panel.store import AnsweredVerdict


def auc(scores: list[float], labels: list[bool]) -> float | None:
    """The probability a random positive scores above a random negative (ties count half); None without both."""
    positives = [s for s, positive in zip(scores, labels) if positive]
    negatives = [s for s, positive in zip(scores, labels) if not positive]
    if not positives or not negatives:
        return None
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in positives for n in negatives)
    return wins / (len(positives) * len(negatives))


def _ship_score(verdict: str, confidence: float) -> float:
    return confidence if verdict == "ship" else 1.0 - confidence


@dataclass(frozen=True)
class Calibration:
    """The AUC of each confidence against the gold labels, over the same n labelled verdicts."""

    n: int
    self_reported: float | None
    token: float | None

    def line(self) -> str:
        """One plain sentence for `panel compare`."""
        if self.self_reported is None or self.token is None:
            return (
                f"calibration: too few labelled verdicts with a verdict-token probability (n = {self.n}; "
                "needs a ship and a skip label, and an endpoint with logprobs = true)"
            )
        scores = f"token probability AUC {self.token:.2f}, self-reported confidence AUC {self.self_reported:.2f}"
        if self.token == self.self_reported:
            return f"calibration (n = {self.n}): {scores}; neither separates ship from skip better"
        better = "the verdict-token probability" if self.token > self.self_reported else "the self-reported confidence"
        return f"calibration (n = {self.n}): {scores}; {better} separates the editors' ship from skip better"


def calibration(verdicts: Iterable[tuple[str | None, AnsweredVerdict | None]]) -> Calibration:
    """Score both confidences of (gold label, answer) pairs; those without a label or either confidence are left out."""
    rows = [
        (gold == "ship", a.verdict, a.confidence, a.verdict_probability)
        for gold, a in verdicts
        if gold in ("ship", "skip")
        and a is not None
        and a.valid
        and a.verdict in ("ship", "skip")
        and a.confidence is not None
        and a.verdict_probability is not None
    ]
    labels = [row[0] for row in rows]
    return Calibration(
        n=len(rows),
        self_reported=auc([_ship_score(v, c) for _, v, c, _ in rows], labels),
        token=auc([_ship_score(v, p) for _, v, _, p in rows], labels),
    )
