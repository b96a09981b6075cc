"""Aggregation: panel ship %, the reviewer split, agreement, and what the page must mark as disagreement."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from panel.answer_kinds import CHAIR_ID
from panel.cards import ToolCard
from panel.personas import persona_order
from panel.store import StoredConsensus, StoredRun, StoredVerdict
from panel.verdict import CONTRADICTING_CONFIDENCE

if TYPE_CHECKING:  # panel.trust reads tallies: only its type is needed here
    from panel.trust import PersonaTrust


def percent(rate: float | None) -> str:
    """A rate as the pages and the CLI print it: '75%', or '—' for None."""
    return "—" if rate is None else f"{round(rate * 100)}%"


@dataclass
class ToolTally:
    """One tool's panel result: who said ship, who said skip, who gave no valid answer."""

    tool: ToolCard
    tool_id: str
    verdicts: dict[str, StoredVerdict]
    personas: list[str]
    # Every stored answer for this tool, valid or not: how many attempts a missing verdict took.
    answers: dict[str, StoredVerdict] = field(default_factory=dict)
    # Persona id -> the majority of its jury and samples, when more than one answer was asked for (panel/jury.py).
    consensus: dict[str, StoredConsensus] = field(default_factory=dict)

    def jury_split(self, persona_id: str) -> bool:
        """True when this persona's jury or samples split with no majority (and no editor decided it)."""
        found = self.consensus.get(persona_id)
        verdict = self.verdicts.get(persona_id)
        return bool(found and found.verdict == "split" and not (verdict and verdict.overridden))

    @property
    def ship(self) -> list[str]:
        """Persona ids whose verdict is ship."""
        return [
            p
            for p in self.personas
            if p in self.verdicts and self.verdicts[p].verdict == "ship" and not self.jury_split(p)
        ]

    @property
    def skip(self) -> list[str]:
        """Persona ids whose verdict is skip."""
        return [
            p
            for p in self.personas
            if p in self.verdicts and self.verdicts[p].verdict == "skip" and not self.jury_split(p)
        ]

    @property
    def split(self) -> list[str]:
        """Persona ids whose jury or samples split: no verdict either way, shown as a split."""
        return [p for p in self.personas if self.jury_split(p)]

    @property
    def missing(self) -> list[str]:
        """Persona ids with no valid verdict (never answered, or every attempt failed); a split is not missing."""
        return [p for p in self.personas if p not in self.ship and p not in self.skip and not self.jury_split(p)]

    @property
    def ship_rate(self) -> float | None:
        """Share of answering personas that said ship (None when nobody answered)."""
        answered = len(self.ship) + len(self.skip)
        return len(self.ship) / answered if answered else None

    @property
    def ship_percent(self) -> str:
        """The page's figure: '75%', or '—' with no verdicts."""
        return percent(self.ship_rate)

    @property
    def split_evenly(self) -> bool:
        """True for a tie such as 2-2: the page marks it."""
        return bool(self.ship) and len(self.ship) == len(self.skip)

    def contradicted(self, persona_id: str) -> bool:
        """True when this persona's confidence is too low to back its own verdict."""
        verdict = self.verdicts.get(persona_id)
        # An editor's flip keeps the model's confidence, which was about the model's verdict, not this one.
        return bool(
            verdict
            and verdict.verdict == verdict.model_verdict
            and verdict.confidence is not None
            and verdict.confidence < CONTRADICTING_CONFIDENCE
        )

    def attempts(self, persona_id: str) -> int:
        """How many requests this persona's answer took (0 when it was never asked)."""
        answer = self.answers.get(persona_id)
        return answer.attempt_count if answer else 0


@dataclass(frozen=True)
class Disagreement:
    """Something the page marks instead of smoothing over: a split, a doubtful or re-asked verdict, an edit."""

    kind: str  # split | jury_split | contradiction | reasked | missing | override
    tool: ToolTally
    persona_id: str | None = None


@dataclass
class PairTally:
    """A pair's two tool tallies, left first, and the chair's summary of them."""

    index: int
    left: ToolTally
    right: ToolTally
    chair: StoredVerdict | None = None

    @property
    def tools(self) -> tuple[ToolTally, ToolTally]:
        """Both tallies, left first."""
        return (self.left, self.right)

    @property
    def pick(self) -> str | None:
        """The chair's pick (left, right, both, neither), or None without a valid summary."""
        return self.chair.verdict if self.chair and self.chair.verdict else None

    @property
    def picked(self) -> list[ToolTally]:
        """The tools the panel would ship with, per the chair."""
        return {"left": [self.left], "right": [self.right], "both": [self.left, self.right]}.get(self.pick or "", [])

    @property
    def chair_predates_edits(self) -> bool:
        """True when an editor changed a reviewer's verdict after the chair wrote its summary."""
        if not self.chair or self.chair.overridden:
            return False
        return any(
            v.override_at and v.override_at > self.chair.created_at
            for side in self.tools
            for v in side.verdicts.values()
        )

    @property
    def disagreements(self) -> list[Disagreement]:
        """Everything the page marks, in page order: per tool, splits first, then per persona."""
        found: list[Disagreement] = []
        for side in self.tools:
            if side.split_evenly:
                found.append(Disagreement("split", side))
            for persona_id in side.personas:
                verdict = side.verdicts.get(persona_id)
                if verdict is None:
                    if side.attempts(persona_id):
                        found.append(Disagreement("missing", side, persona_id))
                    continue
                if side.jury_split(persona_id):
                    found.append(Disagreement("jury_split", side, persona_id))
                if side.contradicted(persona_id):
                    found.append(Disagreement("contradiction", side, persona_id))
                if verdict.attempt_count > 1:
                    found.append(Disagreement("reasked", side, persona_id))
                if verdict.overridden:
                    found.append(Disagreement("override", side, persona_id))
        return found


@dataclass
class RunTally:
    """Everything the page needs from one run."""

    run: StoredRun
    personas: list[str]
    pairs: list[PairTally] = field(default_factory=list)
    # Persona id -> how far to trust it (panel.trust.PersonaTrust), when the page's writer looked it up.
    trust: dict[str, PersonaTrust] = field(default_factory=dict)


def tally_run(run: StoredRun, personas: list[str] | None = None) -> RunTally:
    """Aggregate a stored run into per-tool ship rates and splits; the chair is kept apart from the personas."""
    # The run's items name every persona asked, so one with no stored verdict shows as "no valid answer".
    asked = {*run.persona_ids, *(key[2] for key in run.verdicts)} - {CHAIR_ID}
    persona_ids = personas or sorted(asked, key=persona_order)
    result = RunTally(run, persona_ids)
    for index, ((left, right), (left_id, right_id)) in enumerate(zip(run.pairs, run.tool_ids)):
        tallies = []
        for card, tool_id in ((left, left_id), (right, right_id)):
            answers = {p: v for (i, t, p), v in run.verdicts.items() if i == index and t == tool_id and p != CHAIR_ID}
            verdicts = {p: v for p, v in answers.items() if v.verdict}
            consensus = {p: c for (i, t, p), c in run.consensus.items() if i == index and t == tool_id}
            tallies.append(ToolTally(card, tool_id, verdicts, persona_ids, answers, consensus))
        result.pairs.append(PairTally(index, tallies[0], tallies[1], run.verdicts.get((index, left_id, CHAIR_ID))))
    return result
