"""Aggregation: panel ship %, the reviewer split and agreement, from a stored run."""

from __future__ import annotations

from dataclasses import dataclass, field

from panel.cards import ToolCard
from panel.personas import PERSONA_ORDER
from panel.store import StoredRun, StoredVerdict


@dataclass
class ToolTally:
    """One tool's panel result: who said ship, who said skip, who gave no valid answer."""

    tool: ToolCard
    tool_id: str
    verdicts: dict[str, StoredVerdict]
    personas: list[str]

    @property
    def ship(self) -> list[str]:
        """Persona ids whose verdict is ship."""
        return [p for p in self.personas if p in self.verdicts and self.verdicts[p].verdict == "ship"]

    @property
    def skip(self) -> list[str]:
        """Persona ids whose verdict is skip."""
        return [p for p in self.personas if p in self.verdicts and self.verdicts[p].verdict == "skip"]

    @property
    def missing(self) -> list[str]:
        """Persona ids with no valid verdict (never answered, or every attempt failed)."""
        return [p for p in self.personas if p not in self.ship and p not in self.skip]

    @property
    def ship_rate(self) -> float | None:
        """Share of answering personas that said ship (None when nobody answered)."""
        answered = len(self.ship) + len(self.skip)
        return len(self.ship) / answered if answered else None

    @property
    def ship_percent(self) -> str:
        """The page's figure: '75%', or '—' with no verdicts."""
        rate = self.ship_rate
        return "—" if rate is None else f"{round(rate * 100)}%"

    @property
    def agreement(self) -> float | None:
        """Share of answering personas that sided with the majority (1.0 = unanimous, 0.5 = split)."""
        answered = len(self.ship) + len(self.skip)
        return max(len(self.ship), len(self.skip)) / answered if answered else None

    @property
    def split_evenly(self) -> bool:
        """True for a tie such as 2-2: the page marks it."""
        return bool(self.ship) and len(self.ship) == len(self.skip)


@dataclass
class PairTally:
    """A pair's two tool tallies, left first."""

    index: int
    left: ToolTally
    right: ToolTally

    @property
    def tools(self) -> tuple[ToolTally, ToolTally]:
        """Both tallies, left first."""
        return (self.left, self.right)


@dataclass
class RunTally:
    """Everything the page needs from one run."""

    run: StoredRun
    personas: list[str]
    pairs: list[PairTally] = field(default_factory=list)


def tally_run(run: StoredRun, personas: list[str] | None = None) -> RunTally:
    """Aggregate a stored run into per-tool ship rates and splits."""
    persona_ids = personas or sorted({key[2] for key in run.verdicts}, key=_persona_order)
    result = RunTally(run, persona_ids)
    for index, ((left, right), (left_id, right_id)) in enumerate(zip(run.pairs, run.tool_ids)):
        tallies = []
        for card, tool_id in ((left, left_id), (right, right_id)):
            verdicts = {p: v for (i, t, p), v in run.verdicts.items() if i == index and t == tool_id and v.verdict}
            tallies.append(ToolTally(card, tool_id, verdicts, persona_ids))
        result.pairs.append(PairTally(index, tallies[0], tallies[1]))
    return result


def _persona_order(persona_id: str) -> tuple[int, str]:
    return (PERSONA_ORDER.index(persona_id) if persona_id in PERSONA_ORDER else 99, persona_id)
