"""How far to trust a verdict: a jury's or repeated samples' consensus per run item, and `panel check`'s flips.

The consensus is decided in panel/jury.py and stored here with every member's vote; the run item then points at
an answer that agrees with the majority (so the page, the chair and the analysts' views quote one that does).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime, timezone

import duckdb

from panel.store.connection import Database, named_rows, records
from panel.store.records import MemberVote, StoredConsensus


@dataclass(frozen=True)
class ConsensusRow:
    """What save_consensus stores for one run item: the majority, the answer that shows it, and every vote."""

    pair_index: int
    tool_id: str
    persona_id: str
    verdict: str | None
    shown_key: str  # the cache key the run item points at: an answer agreeing with the majority, else the lead's
    votes: list[MemberVote]


@dataclass(frozen=True)
class CorrectedRate:
    """A row of the corrected_rates view: one persona version's judged, labelled and label-corrected ship rates."""

    persona_id: str
    persona_version: int
    persona_hash: str
    verdicts: int
    judged_rate: float | None
    labels: int
    labelled_rate: float | None
    corrected_rate: float | None
    corrected_low: float | None
    corrected_high: float | None
    corrected_margin: float | None
    labels_margin: float | None


@dataclass(frozen=True)
class CheckFlips:
    """One persona version's order-swap and name-blind flips in the latest `panel check` that probed it."""

    persona_hash: str
    checked_at: datetime
    flips: dict[str, tuple[int, int]]  # variant -> (flipped, compared)


def consensus_stored(con: duckdb.DuckDBPyConnection, run_id: str) -> bool:
    """True when a jury's or samples' consensus is stored for `run_id`, read on `con`."""
    return bool(con.execute("SELECT 1 FROM consensus WHERE run_id = ? LIMIT 1", [run_id]).fetchall())


def read_consensus(con: duckdb.DuckDBPyConnection, run_id: str) -> dict[tuple[int, str, str], StoredConsensus]:
    """The stored consensus of every item of `run_id` that has one (load_run's reader)."""
    found: dict[tuple[int, str, str], StoredConsensus] = {}
    for row in named_rows(
        con.execute(
            "SELECT pair_index, tool_id, persona_id, verdict, votes_json FROM consensus WHERE run_id = ?", [run_id]
        )
    ):
        votes = [MemberVote(**vote) for vote in json.loads(row["votes_json"])]
        found[(row["pair_index"], row["tool_id"], row["persona_id"])] = StoredConsensus(row["verdict"], votes)
    return found


class TrustStore(Database):
    """Consensus of juries and samples, and the flip rates `panel check` measured."""

    def save_consensus(self, run_id: str, rows: list[ConsensusRow], wait_s: float) -> None:
        """Replace the run's consensus with `rows` and point each item at its shown answer; [] clears it.

        The run journal is folded first, so a later fold cannot point an item back at the lead's answer.
        """
        self.fold_journal(wait_s=wait_s)
        now = datetime.now(timezone.utc)
        with self.transaction(wait_s) as con:
            con.execute("DELETE FROM consensus WHERE run_id = ?", [run_id])
            for row in rows:
                votes = json.dumps([asdict(vote) for vote in row.votes])
                con.execute(
                    "INSERT INTO consensus VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [run_id, row.pair_index, row.tool_id, row.persona_id, row.verdict, votes, now],
                )
                con.execute(
                    "UPDATE run_items SET cache_key = ? WHERE run_id = ? AND pair_index = ? AND tool_id = ? "
                    "AND persona_id = ?",
                    [row.shown_key, run_id, row.pair_index, row.tool_id, row.persona_id],
                )

    def has_consensus(self, run_id: str) -> bool:
        """True when a jury's or samples' consensus is stored for `run_id`."""
        with self.reader() as con:
            return consensus_stored(con, run_id)

    def add_check_flips(
        self, run_id: str, flips: list[tuple[str, str, str, int, int]], wait_s: float | None = None
    ) -> None:
        """Record one `panel check`: rows of (persona id, persona hash, variant, flipped, compared)."""
        now = datetime.now(timezone.utc)
        with self.transaction(*(() if wait_s is None else (wait_s,))) as con:
            for persona_id, persona_hash, variant, flipped, compared in flips:
                con.execute(
                    "INSERT INTO check_flips VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [now, run_id, persona_id, persona_hash, variant, flipped, compared],
                )

    def latest_check_flips(self, persona_hashes: list[str]) -> dict[str, CheckFlips]:
        """Per persona version (content hash) of `persona_hashes`: the flips of the latest check that probed it."""
        if not persona_hashes:
            return {}
        with self.reader() as con:
            rows = named_rows(
                con.execute(
                    """SELECT persona_hash, checked_at, variant, flipped, compared FROM check_flips
                       WHERE persona_hash IN (SELECT unnest(?))
                       QUALIFY checked_at = max(checked_at) OVER (PARTITION BY persona_hash)""",
                    [persona_hashes],
                )
            )
        found: dict[str, CheckFlips] = {}
        for row in rows:
            entry = found.setdefault(row["persona_hash"], CheckFlips(row["persona_hash"], row["checked_at"], {}))
            entry.flips[row["variant"]] = (row["flipped"], row["compared"])
        return found

    def labelled_answers(self, persona_hashes: list[str]) -> dict[str, list[tuple[str, str]]]:
        """Per persona version: (editor label, model verdict) of its latest review answer on each labelled tool."""
        if not persona_hashes:
            return {}
        with self.reader() as con:
            rows = con.execute(
                """SELECT persona_hash, label, verdict FROM persona_answers
                   WHERE persona_hash IN (SELECT unnest(?)) AND valid AND label IS NOT NULL
                   QUALIFY row_number() OVER (PARTITION BY persona_hash, tool_name
                                              ORDER BY created_at DESC, verdict_id DESC) = 1""",
                [persona_hashes],
            ).fetchall()
        found: dict[str, list[tuple[str, str]]] = {}
        for persona_hash, label, verdict in rows:
            found.setdefault(persona_hash, []).append((label, verdict))
        return found

    def persona_version_rates(self, persona_hashes: list[str]) -> dict[str, tuple[float | None, int]]:
        """Per persona version: (ship rate, valid verdicts) over its review answers (persona_by_version)."""
        if not persona_hashes:
            return {}
        with self.reader() as con:
            rows = con.execute(
                "SELECT persona_hash, ship_rate, verdicts FROM persona_by_version "
                "WHERE persona_hash IN (SELECT unnest(?))",
                [persona_hashes],
            ).fetchall()
        return {persona_hash: (rate, verdicts) for persona_hash, rate, verdicts in rows}

    def corrected_rates(self, persona_ids: list[str] | None = None) -> list[CorrectedRate]:
        """The corrected_rates view's rows (of `persona_ids` only, if given), by persona and version."""
        with self.reader() as con:
            return records(
                con.execute(
                    "SELECT * FROM corrected_rates WHERE $all OR persona_id IN (SELECT unnest($ids))",
                    {"all": persona_ids is None, "ids": persona_ids or []},
                ),
                CorrectedRate,
            )
