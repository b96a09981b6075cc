"""Agreement statistics against published worked examples, and the edge cases where they are undefined."""

from __future__ import annotations

import pytest

from panel.agreement import balanced_accuracy, cohen_kappa, fleiss_kappa

# Fleiss (1971) as worked on Wikipedia's "Fleiss' kappa" page: 10 subjects, 14 raters, 5 categories.
FLEISS_EXAMPLE = [
    [0, 0, 0, 0, 14],
    [0, 2, 6, 4, 2],
    [0, 0, 3, 5, 6],
    [0, 3, 9, 2, 0],
    [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0],
    [3, 2, 6, 3, 0],
    [2, 5, 3, 2, 2],
    [6, 5, 2, 1, 0],
    [0, 2, 2, 3, 7],
]


def test_fleiss_kappa_matches_the_published_worked_example() -> None:
    subjects = [{str(category): n for category, n in enumerate(row)} for row in FLEISS_EXAMPLE]
    assert fleiss_kappa(subjects) == pytest.approx(0.20993, abs=1e-5)


def test_fleiss_kappa_of_a_panel_that_splits_3_1_on_both_tools_is_below_chance() -> None:
    # The reference page: three personas ship, business skips, on both tools.
    assert fleiss_kappa([{"ship": 3, "skip": 1}, {"ship": 3, "skip": 1}]) == pytest.approx(-1 / 3)


def test_fleiss_kappa_handles_a_missing_verdict_and_ignores_subjects_with_one_rating() -> None:
    with_missing = [{"ship": 3, "skip": 1}, {"skip": 4}, {"ship": 2, "skip": 1}, {"ship": 4}]
    # P = mean(1/2, 1, 1/3, 1) = 17/24; p_ship = 9/15, so P_e = 0.52.
    expected = (17 / 24 - 0.52) / (1 - 0.52)
    assert fleiss_kappa(with_missing) == pytest.approx(expected)
    assert fleiss_kappa([*with_missing, {"ship": 1}, {}]) == pytest.approx(expected)


def test_fleiss_kappa_is_undefined_when_everyone_says_the_same_thing_or_nobody_rated() -> None:
    assert fleiss_kappa([{"ship": 4}, {"ship": 4}]) is None  # the embedded model's usual run
    assert fleiss_kappa([{"ship": 1}, {"skip": 1}]) is None
    assert fleiss_kappa([]) is None


def test_perfect_agreement_on_mixed_subjects_is_kappa_one() -> None:
    assert fleiss_kappa([{"ship": 4}, {"skip": 4}, {"ship": 3}]) == pytest.approx(1.0)


def test_cohen_kappa_matches_the_published_worked_example() -> None:
    # Wikipedia's "Cohen's kappa" example: 50 items, yes/yes 20, yes/no 5, no/yes 10, no/no 15 -> 0.4.
    a = ["yes"] * 25 + ["no"] * 25
    b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    assert cohen_kappa(a, b) == pytest.approx(0.4)


def test_balanced_accuracy_does_not_reward_always_saying_ship_on_a_skewed_gold_set() -> None:
    gold = ["ship"] * 9 + ["skip"]
    assert balanced_accuracy(gold, ["ship"] * 10) == pytest.approx(0.5)
