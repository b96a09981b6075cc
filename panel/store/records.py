"""What the store returns: plain records of runs, verdicts, overrides, labels, votes and prompt versions."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from panel.cards import ToolCard


@dataclass
class StoredVerdict:
    """A persona's current verdict on a tool in a run, with any editor override applied."""

    persona_id: str
    tool_id: str
    verdict: str | None
    confidence: float | None
    headline: str | None
    review: str | None
    key_points: list[str]
    valid: bool
    attempt_count: int
    model: str
    persona_hash: str
    flags: list[str]
    created_at: datetime
    model_verdict: str | None = None
    model_review: str | None = None
    override_editor: str | None = None
    override_at: datetime | None = None
    version: int = 0  # the answer version shown: 0 the model's original, N the editor's pick of an "ask again"

    @property
    def overridden(self) -> bool:
        """True when an editor changed this verdict or its quote."""
        return self.override_editor is not None


@dataclass(frozen=True)
class MemberVote:
    """One member's answer to a persona when a jury or repeated samples answered: verdict None is an abstention."""

    member: str  # the endpoint profile
    sample: int  # 0 for the first sample (the run's own seed)
    cache_key: str
    verdict: str | None


@dataclass(frozen=True)
class StoredConsensus:
    """A persona's majority over its jury and samples (ship, skip, split, or None when all abstained)."""

    verdict: str | None
    votes: list[MemberVote]


@dataclass(frozen=True)
class VoteEvent:
    """A reader's ship/skip on a tool in a run; a changed vote is a new event, the latest counts."""

    run_id: str
    tool_id: str
    voter_id: str  # a hash of the reader's cookie token, never the token itself
    verdict: str
    created_at: datetime


@dataclass(frozen=True)
class VoteTarget:
    """A pair readers can vote on: its run, position and two tools."""

    run_id: str
    run_title: str
    pair_index: int
    left_tool_id: str
    left_name: str
    right_tool_id: str
    right_name: str


@dataclass
class StoredRun:
    """A run as stored: its settings, its pairs' cards and its current verdicts."""

    run_id: str
    title: str
    model: str
    mode: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    pairs: list[tuple[ToolCard, ToolCard]]
    tool_ids: list[tuple[str, str]]
    verdicts: dict[tuple[int, str, str], StoredVerdict] = field(default_factory=dict)
    persona_hashes: dict[str, str] = field(default_factory=dict)
    persona_texts: dict[str, str] = field(default_factory=dict)
    run_file: str = ""
    # (pair index, tool id, persona id) -> the majority of its jury and samples, when more than one answered.
    consensus: dict[tuple[int, str, str], StoredConsensus] = field(default_factory=dict)
    # Every persona the run asked for (chair included), answered or not: a stopped run shows who is missing.
    persona_ids: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class PromptVersion:
    """One stored version of a persona file or of the template set, with how much it was used."""

    content_hash: str
    kind: str  # persona | templates
    name: str
    text: str
    first_seen_at: datetime
    first_used_at: datetime | None
    last_used_at: datetime | None
    verdict_count: int
    last_reviewed_at: datetime | None = None  # the latest review run using its answers (probes don't count)


@dataclass(frozen=True)
class GoldLabel:
    """An editor's ship/skip for a tool, per persona (persona_id) or overall (persona_id None)."""

    tool_name: str
    persona_id: str | None
    verdict: str
    source: str
    review: str | None = None
    created_at: datetime | None = None


@dataclass(frozen=True)
class AnsweredVerdict:
    """The current stored answer for one cache key, with what it cost."""

    cache_key: str
    verdict: str | None
    confidence: float | None
    headline: str | None
    review: str | None
    valid: bool
    prompt_tokens: int
    completion_tokens: int
    verdict_probability: float | None = None  # of the verdict token, when the endpoint returned log-probabilities


@dataclass(frozen=True)
class Override:
    """An editor's change to a verdict or its quote, stored beside the model's answer (never over it)."""

    override_id: int
    run_id: str
    tool_id: str
    tool_name: str
    persona_id: str
    verdict: str | None  # None: the model's verdict stands
    review: str | None  # None: the model's quote stands
    editor: str
    note: str | None
    created_at: datetime
    model_verdict: str | None
    model_review: str | None
    pair_index: int | None = None  # None: a row from before pairs were recorded, in force on every pair
    headline: str | None = None  # None: the model's headline stands (unless the verdict or pick changed)


@dataclass(frozen=True)
class AnswerVersion:
    """One answer of a run item: the model's original (number 0) or an editor's "ask again" (1, 2, ...)."""

    number: int
    cache_key: str
    generation: int
    verdict: str | None  # the verdict, or the chair's pick
    confidence: float | None
    headline: str | None
    review: str | None  # the quote (the chair's summary)
    valid: bool
    note: str | None  # the editor's note sent with the question (None: none, and always for the original)
    editor: str | None  # who asked (None for the original)
    created_at: datetime
    picked: bool  # the version the page uses now


@dataclass(frozen=True)
class Approval:
    """An editor's approval of a pair's page in one state (state_hash); a later edit leaves it behind."""

    approval_id: int
    run_id: str
    pair_index: int
    state_hash: str
    editor: str
    approved_at: datetime


@dataclass(frozen=True)
class Publication:
    """A pair's page published: who, when, in which state, and the files written."""

    publication_id: int
    run_id: str
    pair_index: int
    state_hash: str
    editor: str
    published_at: datetime
    html_path: str
    markdown_path: str
    html_sha256: str
