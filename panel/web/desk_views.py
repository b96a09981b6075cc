"""What the desk's pages show, read from the store: the runs list's rows, a pair's history and its items' versions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from panel.editorial import PairMarks, pair_marks, pair_status, pair_verdicts
from panel.store import AnswerVersion, Approval, Publication, Store
from panel.tally import PairTally, RunTally, tally_run


@dataclass(frozen=True)
class PairRow:
    """A pair as the runs list shows it."""

    pair: PairTally
    status: str
    marks: PairMarks


@dataclass(frozen=True)
class RunRow:
    """A run and its pairs as the runs list shows them."""

    tally: RunTally
    pairs: list[PairRow]


def pair_path(run_id: str, pair: PairTally) -> str:
    """The desk's URL path of a pair, e.g. /runs/3f2a9c1b0d4e/pairs/1."""
    return f"/runs/{run_id}/pairs/{pair.index + 1}"


def run_rows(store: Store) -> list[RunRow]:
    """Every stored editors' run (the desk's own included), newest first, with each pair's status and marks."""
    rows = []
    for run_id in store.review_runs():
        tally = tally_run(store.load_run(run_id))
        approvals, publications = store.approvals(run_id), store.publications(run_id)
        pairs = [PairRow(p, pair_status(p, approvals, publications), pair_marks(p)) for p in tally.pairs]
        rows.append(RunRow(tally, pairs))
    return rows


def pair_history(
    pair: PairTally, approvals: list[Approval], publications: list[Publication]
) -> list[tuple[datetime, str]]:
    """The pair's approvals and publications as (when, what) lines, oldest first."""
    history: list[tuple[datetime, str]] = [
        (a.approved_at, f"approved by {a.editor}") for a in approvals if a.pair_index == pair.index
    ]
    published = [p for p in publications if p.pair_index == pair.index]
    history += [(p.published_at, f"published by {p.editor} to {p.html_path}") for p in published]
    return sorted(history, key=lambda item: item[0])


def item_versions(store: Store, run_id: str, pair: PairTally) -> dict[tuple[str, str], list[AnswerVersion]]:
    """Each shown item's answer versions (the original, 0, first), by (persona id, tool id); the chair's is stored
    under its pair's left tool."""
    return {
        (v.persona_id, v.tool_id): store.versions(run_id, pair.index, v.tool_id, v.persona_id)
        for v in pair_verdicts(pair)
    }
