"""Agreement statistics between two raters (a persona and the gold labels): plain functions over label lists."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence


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
