"""Juries and repeated samples: several answers per persona, and the verdict their strict majority.

A run's members are its jury's endpoint profiles (`--jury NAME`, `[run] jury` in panel.toml; none: the run's own
endpoint) times its samples (`--samples N`, `[run] samples`): sample k of a model is asked with seed + k, so
each member's answer has its own cache key and raising N asks only the new samples. The first member's first
sample is the run's own answer (review.py asks it); ask_members asks the rest after it, and stores per run
item the consensus with every member's vote (store/trust.py).

The consensus is decided in two steps: a model's verdict is the strict majority of its samples, the persona's
the strict majority of its models; a member with no valid answer abstains (it is shown, not dropped silently),
and a tie among those that answered is a split, never broken by list order.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from panel.answers import Answer, VerdictJob
from panel.ask import RunBudget, cache_key
from panel.config import Settings
from panel.config_keys import KEYS, PROFILE
from panel.errors import ConfigError
from panel.model.embedded import open_endpoint
from panel.model.endpoint import Endpoint
from panel.review import PreparedRun, ask_jobs
from panel.served_model import with_served_model
from panel.store import FOLD_WAIT_S, ConsensusRow, MemberVote, Store

SPLIT = "split"
# Any: each Settings field's own default, of that field's type (as config._DEFAULTS).
_DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(Settings)}


@dataclass(frozen=True)
class Member:
    """One answer per persona a run asks for: an endpoint profile and a sample number, with its settings."""

    name: str
    sample: int
    settings: Settings


@dataclass
class MembersOutcome:
    """What ask_members did: the answers it asked for (the lead's first sample is the review's), and faults."""

    members: int = 1
    needed: int = 0
    cached: int = 0
    answers: list[Answer] = field(default_factory=list)
    faults: dict[str, str] = field(default_factory=dict)  # member -> why it could not answer (it abstains)

    @property
    def requests(self) -> int:
        """HTTP requests of the members' answers."""
        return sum(answer.requests for answer in self.answers)

    @property
    def tokens(self) -> int:
        """Prompt plus completion tokens of the members' answers."""
        return sum(a.prompt_tokens + a.completion_tokens for a in self.answers)


def profile_settings(settings: Settings, name: str) -> Settings:
    """`settings` answered by endpoint profile `name` (taken whole, as `--endpoint NAME`); ConfigError if unknown."""
    if name == settings.endpoint_name:
        return settings
    if name not in settings.profiles:
        raise ConfigError(f"no endpoint profile '{name}' for the jury (known: {', '.join(settings.profiles)})")
    profile = settings.profiles[name]
    values: dict[str, Any] = {
        key.field: getattr(profile, key.key or "")
        if getattr(profile, key.key or "") is not None
        else _DEFAULTS[key.field]
        for key in KEYS
        if key.table == PROFILE
    }
    origins = {**settings.origins, **{f: f"jury profile [endpoints.{name}]" for f in values}}
    return replace(settings, endpoint_name=name, origins=origins, **values)


def sample_settings(settings: Settings, sample: int) -> Settings:
    """The settings of sample `sample` (0: the run's own seed; k: seed + k, so every sample is its own answer)."""
    if sample == 0:
        return settings
    return replace(settings, seed=(settings.seed or 0) + sample)


def member_profile(settings: Settings, name: str) -> Settings:
    """Profile `name`'s settings for a jury, its model looked up on the endpoint when the profile names none."""
    profile = profile_settings(settings, name)
    return profile if name == settings.endpoint_name else with_served_model(profile)[0]


def lead_settings(settings: Settings) -> Settings:
    """The settings the run's own answers use: its jury's first profile, else the run's endpoint."""
    return member_profile(settings, settings.jury[0]) if settings.jury else settings


def run_members(settings: Settings) -> list[Member]:
    """Every member of a run, the lead's first sample first: each jury profile (model looked up on the endpoint
    when its profile names none) times each sample."""
    names = list(dict.fromkeys(settings.jury)) or [settings.endpoint_name]
    members: list[Member] = []
    for name in names:
        profile = member_profile(settings, name)
        members.extend(Member(name, k, sample_settings(profile, k)) for k in range(max(settings.samples, 1)))
    return members


def majority(verdicts: list[str | None]) -> str | None:
    """The strict majority of those that answered (None abstains): ship, skip, split (no majority), or None."""
    answered = [v for v in verdicts if v is not None]
    for choice in ("ship", "skip"):
        if 2 * answered.count(choice) > len(answered):
            return choice
    return SPLIT if answered else None


def model_verdicts(votes: list[MemberVote]) -> dict[str, str | None]:
    """Each member model's verdict over its samples, in jury order."""
    by_model: dict[str, list[str | None]] = {}
    for vote in votes:
        by_model.setdefault(vote.member, []).append(vote.verdict)
    return {model: majority(samples) for model, samples in by_model.items()}


def consensus(votes: list[MemberVote]) -> str | None:
    """A persona's verdict: the strict majority of its models' verdicts (a split model votes for neither side)."""
    decided = model_verdicts(votes).values()
    if all(v is None for v in decided):
        return None
    return majority([v for v in decided if v is not None])


def shown_key(votes: list[MemberVote], verdict: str | None) -> str:
    """The answer the run item shows: the first (jury order, then sample) that agrees with the verdict, else the
    lead's first sample."""
    return next(
        (v.cache_key for v in votes if verdict in ("ship", "skip") and v.verdict == verdict), votes[0].cache_key
    )


def member_jobs(jobs: list[VerdictJob], member: Member) -> list[VerdictJob]:
    """The run's reviewer jobs as `member` asks them: the same messages under the member's cache key."""
    return [replace(j, cache_key=cache_key(j.messages, member.settings, member.settings.structured_mode)) for j in jobs]


def ask_members(
    prepared: PreparedRun,
    settings: Settings,
    store: Store,
    *,
    refresh: bool = False,
    endpoint: Endpoint | None = None,
    on_answer: Callable[[Answer], None] | None = None,
    consensus_stored: bool = True,
) -> MembersOutcome:
    """Ask every member but the lead's first sample for what it lacks, store the answers and each item's consensus.

    With one member (no jury, one sample) nothing is asked and a consensus stored for the run is cleared
    (`consensus_stored` False, as the review's rehearsal read it, spares the database that look).
    `endpoint` serves the lead's profile (one already started); other profiles are opened from their settings.
    A member that cannot answer (bad key, unreachable) abstains: its fault is in the outcome, the run goes on.
    """
    members = run_members(settings)
    outcome = MembersOutcome(members=len(members))
    if len(members) == 1 and not consensus_stored:
        return outcome
    store.acquire_writer()
    try:
        planned = [(member, member_jobs(prepared.jobs, member)) for member in members]
        if len(members) == 1:
            if store.has_consensus(prepared.run_id):
                store.save_consensus(prepared.run_id, [], FOLD_WAIT_S)
            return outcome
        lead = members[0]
        for name in dict.fromkeys(m.name for m in members):
            group = [(m, jobs) for m, jobs in planned[1:] if m.name == name]
            if group:
                given = endpoint if name == lead.name else None
                _ask_profile(group, prepared, store, given, refresh, outcome, on_answer)
        store.save_consensus(prepared.run_id, _consensus_rows(planned, store), FOLD_WAIT_S)
        return outcome
    finally:
        store.release_writer()


def _ask_profile(
    group: list[tuple[Member, list[VerdictJob]]],
    prepared: PreparedRun,
    store: Store,
    given: Endpoint | None,
    refresh: bool,
    outcome: MembersOutcome,
    on_answer: Callable[[Answer], None] | None,
) -> None:
    """Ask one profile's members on one endpoint (the embedded server started once for all its samples)."""
    first = group[0][0].settings
    budget = RunBudget(first.max_requests, first.token_budget)  # each model's own caps: a fault spends only its own
    log_path = store.path.parent / "logs" / "embedded-server.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    todo_of = []
    for member, jobs in group:
        done = set() if refresh else store.answered_keys([j.cache_key for j in jobs])
        todo = list({j.cache_key: j for j in jobs if j.cache_key not in done}.values())
        outcome.needed += len(jobs)
        outcome.cached += len(jobs) - len(todo)
        todo_of.append((member, todo))
    if not any(todo for _, todo in todo_of):
        return
    with _endpoint(first, given, log_path) as active:
        for member, todo in todo_of:
            if not todo or budget.spent:
                continue
            answers: list[Answer] = []

            def land(answer: Answer) -> None:
                answers.append(answer)  # noqa: B023  (called only while this member is asked)
                if on_answer:
                    on_answer(answer)

            ask_jobs(todo, member.settings, store, budget, land, active)
            store.save_answers(prepared.run_id, answers, member.settings, wait_s=FOLD_WAIT_S)
            outcome.answers.extend(answers)
    if budget.fault:
        outcome.faults[group[0][0].name] = budget.fault


@contextlib.contextmanager
def _endpoint(settings: Settings, given: Endpoint | None, log_path: Path) -> Iterator[Endpoint]:
    if given is not None:
        yield given
        return
    with open_endpoint(settings, log_path) as active:
        yield active


def _consensus_rows(planned: list[tuple[Member, list[VerdictJob]]], store: Store) -> list[ConsensusRow]:
    """Per run item: every member's vote (its current valid verdict, or None), the consensus and the shown answer."""
    answers = store.answered_verdicts([j.cache_key for _, jobs in planned for j in jobs])
    rows: dict[tuple[int, str, str], list[MemberVote]] = {}
    for member, jobs in planned:
        for job in jobs:
            answer = answers.get(job.cache_key)
            vote = MemberVote(
                member.name, member.sample, job.cache_key, answer.verdict if answer and answer.valid else None
            )
            item = (job.pair_index, job.tool.card_hash, job.persona.id)
            if not any(v.member == vote.member and v.sample == vote.sample for v in rows.get(item, [])):
                rows.setdefault(item, []).append(vote)
    result = []
    for (pair_index, tool_id, persona_id), votes in rows.items():
        verdict = consensus(votes)
        result.append(ConsensusRow(pair_index, tool_id, persona_id, verdict, shown_key(votes, verdict), votes))
    return result
