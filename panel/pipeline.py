"""One function per user job, end to end. draft_run: prepare a run, ask the reviewers, ask the chair, render.

The CLI (`panel review`) parses flags, calls draft_run and prints what its DraftProgress hears and what the
DraftOutcome says; tests and benchmarks call the same function. Nothing here prints.

    from panel import draft_run, project_settings
    outcome = draft_run("runs/example.yaml", project_settings())
    print(outcome.status, outcome.pages)
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

from panel.answers import Answer
from panel.chair import ChairOutcome, summarize_run
from panel.config import Settings
from panel.cost import Prices, RunCost, run_cost
from panel.errors import BudgetExceeded, EndpointError, PanelError
from panel.jury import MembersOutcome, ask_members, lead_settings
from panel.model.endpoint import Endpoint, missing_key_warning
from panel.render import write_run_pages
from panel.review import PreparedRun, ReviewOutcome, prepare_run, review
from panel.served_model import start_preflight
from panel.store import SETTLE_WAIT_S, Store
from panel.tally import RunTally


class DraftProgress:
    """What draft_run reports while it works, step by step; each method does nothing here: override what you show."""

    def planned(self, prepared: PreparedRun) -> None:
        """The run is loaded and every prompt rendered; no request is sent yet."""

    def asking(self, review: ReviewOutcome) -> None:
        """The reviewers are about to be asked: `review.needed` verdicts, `review.cached` of them stored already."""

    def answered(self, answer: Answer) -> None:
        """One answer landed (a reviewer's verdict, then the chair's: persona id tally.CHAIR_ID), valid or not."""

    def reviewed(self, draft: DraftOutcome) -> None:
        """The reviewers are done (draft.status, counts); the chair is next."""

    def rendered(self, draft: DraftOutcome) -> None:
        """The pages are written (draft.pages; [] when the run has no valid verdict)."""

    def notice(self, line: str) -> None:
        """A line the user should read now (no key for a remote endpoint, waiting for a reader to let go)."""


@dataclass
class DraftOutcome:
    """What draft_run did: the reviewers' counts, the chair's outcome, the pages, and why it stopped if it did.

    needed/cached/asked/failed count the reviewers' verdicts (the pair summaries are in `chair`); requests and
    tokens count every request of this draft, the chair's included. The steps' own objects stay reachable:
    `prepared` (cards, personas, jobs), `review`, `store`, `tally`.
    """

    prepared: PreparedRun
    settings: Settings
    store: Store
    review: ReviewOutcome
    chair: ChairOutcome = field(default_factory=lambda: ChairOutcome(0, 0))
    tally: RunTally | None = None  # None when the pages were not rendered
    pages: list[Path] = field(default_factory=list)  # HTML pages; the Markdown beside each has the suffix .md
    settled: bool = False  # every answer is in the database, none waits in the journal
    members: MembersOutcome = field(default_factory=MembersOutcome)  # a jury's and repeated samples' answers

    @property
    def cost(self) -> RunCost:
        """What this draft's requests cost (reviewers and chair; cached answers are free) at the settings' prices."""
        return run_cost(self.review.answers + self.members.answers + self.chair.answers, Prices.of(self.settings))

    @property
    def run_id(self) -> str:
        """The run's id: a hash of its cards and its verdicts' cache keys."""
        return self.prepared.run_id

    @property
    def needed(self) -> int:
        """Reviewer verdicts the run needs."""
        return self.review.needed

    @property
    def cached(self) -> int:
        """Reviewer verdicts already stored before this draft."""
        return self.review.cached

    @property
    def asked(self) -> int:
        """Reviewer verdicts requested in this draft."""
        return self.review.asked

    @property
    def failed(self) -> int:
        """Reviewer verdicts that got no valid answer after every re-ask."""
        return self.review.failed

    @property
    def requests(self) -> int:
        """HTTP requests of the reviewers and the chair, counting re-asks and the SDK's retries."""
        return self.review.requests + self.members.requests + sum(answer.requests for answer in self.chair.answers)

    @property
    def tokens(self) -> int:
        """Prompt plus completion tokens of the reviewers and the chair."""
        chair = sum(a.prompt_tokens + a.completion_tokens for a in self.chair.answers)
        return self.review.tokens + self.members.tokens + chair

    @property
    def status(self) -> str:
        """The run's status: finished, incomplete (a verdict got no valid answer) or stopped."""
        return self.review.status

    @property
    def stop_reason(self) -> str | None:
        """Why the reviewers stopped early (a budget, an endpoint fault), or None."""
        return self.review.stop_reason

    @property
    def endpoint_fault(self) -> str | None:
        """What to fix when the endpoint could not answer (bad key, unknown model, unreachable), or None."""
        return self.review.endpoint_fault or self.chair.endpoint_fault

    @property
    def complete(self) -> bool:
        """True when every verdict and every pair summary has a valid answer."""
        return not (self.stop_reason or self.endpoint_fault or self.failed or self.chair.failed or self.chair.not_asked)

    def error(self) -> PanelError | None:
        """The error a run that stopped early ends with (EndpointError, BudgetExceeded: what to fix), else None.

        Failed verdicts are no error here: they are stored as such, and `complete` is False.
        """
        if error := self.review.endpoint_error():
            return error
        if self.chair.endpoint_fault:
            return EndpointError(
                f"{self.chair.endpoint_fault} (every verdict is stored, the pair summaries are not; "
                "rerun the same command once fixed)"
            )
        if self.stop_reason:
            return BudgetExceeded(
                f"{self.stop_reason}: {self.review.stored} of {self.needed} verdicts stored; "
                "rerun the same command to resume (raise or drop the budget flag)"
            )
        return None


def draft_run(
    run_file: str | Path,
    settings: Settings,
    *,
    refresh: bool = False,
    personas: list[str] | None = None,
    chair: bool = True,
    render: bool = True,
    endpoint: Endpoint | None = None,
    progress: DraftProgress | None = None,
    on_answer: Callable[[Answer], None] | None = None,
    settle_wait_s: float = SETTLE_WAIT_S,
) -> DraftOutcome:
    """Draft a run's pages: prepare it, ask the reviewers and the chair what is not cached, render; return the outcome.

    `personas` limits the reviewers to these ids; `refresh` asks again even for cached answers; `chair` and
    `render` False stop after the reviewers. `endpoint`: one already started (default: the settings' endpoint,
    or the embedded model for as long as the asking takes). `on_answer` sees every answer as it lands.
    At the end the run journal is folded into the database, waiting up to `settle_wait_s` for readers.

    Raises CardError/PersonaError before any request (a broken run file, persona or template), StoreError
    (the database is locked by another writer, damaged, or refuses a write). An endpoint that cannot answer
    or a spent budget is no exception: the outcome says so (`status`, `stop_reason`, `error()`).
    On Ctrl-C what was received is stored (or journaled) before KeyboardInterrupt goes on.
    """
    progress = progress or DraftProgress()
    jury_settings, settings = settings, lead_settings(settings)  # a jury's first profile answers the run itself
    # GET /models, free, while the run is planned and its database opened: it lets the first wave go out whole.
    cleared = None if endpoint is not None and endpoint.embedded else start_preflight(settings)
    prepared = prepare_run(run_file, settings, personas)
    store = Store(settings.db_path)
    if warning := missing_key_warning(settings):
        progress.notice(warning)
    progress.planned(prepared)

    def land(answer: Answer) -> None:
        progress.answered(answer)
        if on_answer:
            on_answer(answer)

    try:
        outcome = DraftOutcome(
            prepared,
            settings,
            store,
            review(
                prepared,
                settings,
                store,
                refresh=refresh,
                endpoint=endpoint,
                on_answer=land,
                on_start=progress.asking,
                cleared=cleared,
            ),
        )
        if not outcome.review.endpoint_fault and not outcome.review.stop_reason:  # the chair reads the majority
            outcome.members = ask_members(
                prepared,
                jury_settings,
                store,
                refresh=refresh,
                endpoint=endpoint,
                on_answer=land,
                consensus_stored=outcome.review.consensus_stored,
            )
            for member, fault in outcome.members.faults.items():
                progress.notice(f"jury member {member} abstains: {fault}")
        progress.reviewed(outcome)
        if chair:
            outcome.chair = summarize_run(
                store,
                outcome.run_id,
                settings,
                refresh=refresh,
                endpoint=endpoint,
                on_answer=land,
                after=outcome.review,
                cleared=_proven(outcome.review) or cleared,
            )
        if render:
            outcome.tally, outcome.pages = write_run_pages(
                store, outcome.run_id, settings.out_dir, settings.signup_link
            )
            progress.rendered(outcome)
        outcome.settled = settle_journal(store, settle_wait_s, progress.notice)
    except KeyboardInterrupt:
        settle_journal(store, 0, progress.notice)  # whoever pressed Ctrl-C wants out, not a wait for readers
        raise
    return outcome


def _proven(review: ReviewOutcome) -> Future[bool] | None:
    """A cleared Future when a reviewer got a valid verdict in this draft: the endpoint takes the key and model."""
    if not any(answer.verdict is not None for answer in review.answers):
        return None
    proven: Future[bool] = Future()
    proven.set_result(True)
    return proven


def settle_journal(store: Store, wait_s: float, notice: Callable[[str], None]) -> bool:
    """Fold the run journal into the database, waiting up to `wait_s` for readers; False if it must stay.

    `notice` hears that the wait is on (when it may be long) and, if the answers stay, where they are safe.
    """
    if store.fold_journal(wait_s=min(wait_s, 1.0)):
        return True
    if wait_s > 1.0:
        notice(
            f"another process (a panel sql query?) holds {store.path}: waiting up to {wait_s:g} s "
            "to store the journaled answers"
        )
        if store.fold_journal(wait_s=wait_s):
            return True
    notice(
        f"the answers are safe in {store.journal.path}; the next panel command that writes this database stores them"
    )
    return False
