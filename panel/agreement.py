"""Agreement statistics: a persona against gold labels (accuracy, balanced accuracy, Cohen's kappa), and a whole
panel among itself (Fleiss' kappa). Plain functions over label lists and counts."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence


def _checked(gold: Sequence[str], predicted: Sequence[str]) -> int:
    if len(gold) != len(predicted):
        raise ValueError(f"gold has {len(gold)} labels but predicted has {len(predicted)}")
    return len(gold)


def accuracy(gold: Sequence[str], predicted: Sequence[str]) -> float | None:
    """Share of items where `predicted` equals `gold`; None for no items."""
    n = _checked(gold, predicted)
    return sum(g == p for g, p in zip(gold, predicted)) / n if n else None


def balanced_accuracy(gold: Sequence[str], predicted: Sequence[str]) -> float | None:
    """Mean recall over the classes present in `gold` (a judge that always says ship scores 0.5 on mixed gold)."""
    if not _checked(gold, predicted):
        return None
    recalls = []
    for label in sorted(set(gold)):
        hits = [p == label for g, p in zip(gold, predicted) if g == label]
        recalls.append(sum(hits) / len(hits))
    return sum(recalls) / len(recalls)


def cohen_kappa(gold: Sequence[str], predicted: Sequence[str]) -> float | None:
    """Cohen's kappa: agreement beyond chance; None when undefined (no items, or both raters used one label)."""
    n = _checked(gold, predicted)
    if not n:
        return None
    observed = sum(g == p for g, p in zip(gold, predicted)) / n
    gold_counts, predicted_counts = Counter(gold), Counter(predicted)
    expected = sum(gold_counts[label] * predicted_counts[label] for label in gold_counts) / (n * n)
    if expected == 1.0:
        return None
    return (observed - expected) / (1.0 - expected)


def fleiss_kappa(subjects: Sequence[Mapping[str, int]]) -> float | None:
    """Fleiss' kappa for several raters: each subject maps a label to how many raters gave it.

    Subjects may have different numbers of raters; those with fewer than two are left out (as the
    run_agreement view does). None when undefined: no subject left, or every rating has one label.
    """
    rated = [counts for counts in subjects if sum(counts.values()) >= 2]
    if not rated:
        return None
    pairwise: list[float] = []  # per subject: the share of rater pairs that agree
    totals: Counter[str] = Counter()
    for counts in rated:
        n = sum(counts.values())
        pairwise.append((sum(c * c for c in counts.values()) - n) / (n * (n - 1)))
        totals.update(counts)
    observed = sum(pairwise) / len(pairwise)
    ratings = sum(totals.values())
    expected = sum((n / ratings) ** 2 for n in totals.values())
    if expected >= 1.0:
        return None
    return (observed - expected) / (1.0 - expected)
