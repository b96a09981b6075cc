"""Community votes as data: readers' ship/skip per tool, the tallies a page shows, and the forms it carries.

Votes are append-only events (store.add_votes); a reader's latest event per tool counts. CommunityVotes
mirrors what is durable while `panel serve` runs (panel/web/vote_writer.py writes them); render.py reads
the tallies.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from panel.store import VoteEvent
from panel.tally import percent


@dataclass(frozen=True)
class CommunityTally:
    """How readers voted on one tool: each reader's latest vote counted once."""

    ship: int = 0
    skip: int = 0

    @property
    def votes(self) -> int:
        """Readers who voted."""
        return self.ship + self.skip

    @property
    def ship_rate(self) -> float | None:
        """Share of readers who said ship (None with no votes)."""
        return self.ship / self.votes if self.votes else None

    @property
    def ship_percent(self) -> str:
        """The page's figure: '40%', or '—' with no votes."""
        return percent(self.ship_rate)

    def gap(self, panel_rate: float | None) -> str:
        """Panel minus community ship %, in points ('+35 pts', '−10 pts', '0 pts'); '—' when either is missing."""
        if panel_rate is None or self.ship_rate is None:
            return "—"
        points = round(panel_rate * 100) - round(self.ship_rate * 100)
        return f"+{points} pts" if points > 0 else (f"−{-points} pts" if points < 0 else "0 pts")


@dataclass(frozen=True)
class VoteForms:
    """What a served page needs to show one reader the vote buttons: where to post, their CSRF token, their votes."""

    action: str
    csrf: str
    mine: dict[str, str]  # tool id -> this reader's current verdict


class CommunityVotes:
    """Every reader's current vote per (run, tool), kept in step with the committed events."""

    def __init__(self, current: Iterable[VoteEvent] = ()) -> None:
        self._by_tool: dict[tuple[str, str], dict[str, str]] = {}
        self._ship: dict[tuple[str, str], int] = {}
        self.apply(current)

    def apply(self, events: Iterable[VoteEvent]) -> None:
        """Take committed events in commit order: a reader's later vote replaces their earlier one."""
        for event in events:
            key = (event.run_id, event.tool_id)
            voters = self._by_tool.setdefault(key, {})
            before = voters.get(event.voter_id)
            voters[event.voter_id] = event.verdict
            self._ship[key] = self._ship.get(key, 0) + (event.verdict == "ship") - (before == "ship")

    def tally(self, run_id: str, tool_id: str) -> CommunityTally:
        """The community tally of one tool in one run."""
        key = (run_id, tool_id)
        ship = self._ship.get(key, 0)
        return CommunityTally(ship=ship, skip=len(self._by_tool.get(key, {})) - ship)

    def vote_of(self, run_id: str, tool_id: str, voter_id: str) -> str | None:
        """This reader's current vote on a tool, if any."""
        return self._by_tool.get((run_id, tool_id), {}).get(voter_id)
