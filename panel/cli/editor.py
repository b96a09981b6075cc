"""Editors' commands: review a run file, re-render a stored run."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from panel.answer_kinds import CHAIR_ID, kind_of
from panel.answers import Answer
from panel.chair import ChairOutcome
from panel.cli.app import (
    AllowOutsideCardsOption,
    BaseUrlOption,
    BatchOption,
    ConcurrencyOption,
    DbOption,
    EndpointOption,
    MaxRequestsOption,
    MaxRetriesOption,
    MaxTokensOption,
    ModelOption,
    ModeOption,
    OutOption,
    PersonaOption,
    PersonasDirOption,
    PollOption,
    PriceInputOption,
    PriceOutputOption,
    PromptsDirOption,
    SeedOption,
    TemperatureOption,
    ThenLiveOption,
    TimeoutOption,
    TokenBudgetOption,
    WaitOption,
    app,
    console,
    err_console,
    make_settings,
    model_settings,
)
from panel.cli.batch import check_batch_flags, review_by_batch
from panel.config import Settings
from panel.pipeline import DraftOutcome, DraftProgress, draft_run
from panel.render import write_run_pages
from panel.review import PreparedRun, ReviewOutcome
from panel.store import Store
from panel.tally import RunTally

SamplesOption = Annotated[
    Optional[int],
    typer.Option(
        "--samples", min=1, max=25, help="Ask each persona N times (seeds seed..seed+N-1); the verdict is the majority."
    ),
]
JuryOption = Annotated[
    Optional[list[str]],
    typer.Option(
        "--jury",
        help="An endpoint profile that answers every persona too (repeat: --jury openai --jury local); "
        "the verdict is the models' strict majority.",
    ),
]


def _summary_table(tally: RunTally) -> Table:
    table = Table(title=f"Run {tally.run.run_id} · {tally.run.model}", show_lines=False)
    table.add_column("Tool")
    table.add_column("Panel ship", justify="right")
    for persona_id in tally.personas:
        table.add_column(persona_id)
    for pair in tally.pairs:
        for side in pair.tools:
            cells = []
            for persona_id in tally.personas:
                verdict = side.verdicts.get(persona_id)
                cells.append(verdict.verdict if verdict else "—")
            table.add_row(side.tool.name, side.ship_percent, *cells)
    return table


def _print_pages(run_id: str, tally: RunTally, pages: list[Path]) -> None:
    if not pages:  # an empty draft would pass for a review
        err_console.print(f"no page written: run {run_id} has no valid verdict", markup=False, highlight=False)
        return
    console.print(_summary_table(tally))
    for page in pages:
        console.print(f"page: {page}")


@app.command("review")
def review_command(
    run_file: Annotated[Path, typer.Argument(help="Run file naming the tool pairs, e.g. runs/example.yaml.")],
    endpoint: EndpointOption = None,
    base_url: BaseUrlOption = None,
    model: ModelOption = None,
    mode: ModeOption = None,
    concurrency: ConcurrencyOption = None,
    temperature: TemperatureOption = None,
    max_tokens: MaxTokensOption = None,
    seed: SeedOption = None,
    samples: SamplesOption = None,
    jury: JuryOption = None,
    persona: PersonaOption = None,
    personas_dir: PersonasDirOption = None,
    prompts_dir: PromptsDirOption = None,
    refresh: Annotated[
        bool, typer.Option(help="Ask again even for cached verdicts; old ones stay as history.")
    ] = False,
    timeout: TimeoutOption = None,
    max_retries: MaxRetriesOption = None,
    max_requests: MaxRequestsOption = None,
    token_budget: TokenBudgetOption = None,
    price_input: PriceInputOption = None,
    price_output: PriceOutputOption = None,
    allow_outside_cards: AllowOutsideCardsOption = False,
    db: DbOption = None,
    out: OutOption = None,
    batch: BatchOption = False,
    wait: WaitOption = False,
    then_live: ThenLiveOption = False,
    poll_seconds: PollOption = 5.0,
) -> None:
    """Ask every persona for a verdict on every tool of a run file, store them, render the pages.

    Cached verdicts are not asked again: rerun the same command to resume a stopped or killed run.
    With --batch the missing ones go out as one Batch API batch; rerun (or --wait) to collect it.

    Example: panel review runs/example.yaml --concurrency 16 --max-requests 500
    """
    if batch and (jury or (samples or 1) > 1):
        raise typer.BadParameter("--jury and --samples are live only: drop --batch")
    check_batch_flags(batch, wait, then_live)
    if batch and refresh:
        raise typer.BadParameter("--refresh is live only: drop --batch to ask cached verdicts again")
    settings = model_settings(
        db,
        out,
        [run_file],
        endpoint_name=endpoint,
        base_url=base_url,
        model=model,
        mode=mode,
        concurrency=concurrency,
        temperature=temperature,
        max_tokens=max_tokens,
        seed=seed,
        samples=samples,
        jury=jury or None,
        timeout_s=timeout,
        max_retries=max_retries,
        max_requests=max_requests,
        token_budget=token_budget,
        price_input=price_input,
        price_output=price_output,
        personas_dir=personas_dir,
        prompts_dir=prompts_dir,
        allow_outside_cards=allow_outside_cards,
    )
    if batch and not review_by_batch(run_file, settings, wait, then_live, persona, poll_seconds):
        return
    try:  # Ctrl-C at any step (the chair, the render, the wait for a reader) keeps what was received
        with _ReviewPrinter(settings) as printer:
            outcome = draft_run(run_file, settings, refresh=refresh, personas=persona, progress=printer)
    except KeyboardInterrupt:
        err_console.print("interrupted: the answers received so far are stored; rerun the same command to resume")
        raise typer.Exit(code=130) from None
    console.print(outcome.cost.line(), markup=False, highlight=False)  # what it spent, also when it stopped early
    if error := outcome.error():
        raise error
    for line in _chair_lines(outcome.chair):
        err_console.print(line, markup=False, highlight=False, soft_wrap=True)
    if not outcome.complete:
        raise typer.Exit(code=3)


class _ReviewPrinter(DraftProgress):
    """Everything `panel review` prints while draft_run works: on a terminal a live progress bar for the reviewers
    (verdicts, failures, retries, tokens), elsewhere one line per answer; then the outcome, the chair, the pages."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.live = console.is_terminal
        self.failed = self.retries = self.tokens = 0
        self.started = time.monotonic()
        self._bar = Progress(
            TextColumn("verdicts"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[counts]}"),
            TimeElapsedColumn(),
            console=console,
            disable=not self.live,
        )
        self._task = self._bar.add_task("review", total=None, counts="")
        self._asking = False

    def __enter__(self) -> _ReviewPrinter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop_bar()  # still running only when the reviewers' step raised

    def _stop_bar(self) -> None:
        if self._asking:
            self._bar.stop()
            self._asking = False

    def notice(self, line: str) -> None:
        """Print a warning or a wait to stderr."""
        err_console.print(line, markup=False, highlight=False, soft_wrap=True)

    def planned(self, prepared: PreparedRun) -> None:
        """Name the run, its size and where it is asked."""
        where = "embedded model" if self.settings.embedded else self.settings.base_url
        console.print(
            f"run {prepared.run_id}: {len(prepared.jobs)} verdicts from {where} "
            f"({self.settings.model_name}, mode {self.settings.structured_mode})"
        )
        self.started = time.monotonic()

    def asking(self, review: ReviewOutcome) -> None:
        """Show what the run needs: cached verdicts count as done."""
        if not self.live:
            console.print(f"{review.cached} cached, {review.needed - review.cached} to ask")
        self._bar.update(self._task, total=review.needed, completed=review.cached, counts="")
        self._bar.start()
        self._asking = True

    def answered(self, answer: Answer) -> None:
        """Count a reviewer's answer on the bar (or print it); print each chair answer."""
        if not self._asking:  # the chair's: after the reviewers
            console.print(_answer_line(answer), markup=False, highlight=False)
            return
        self.failed += answer.verdict is None
        self.retries += answer.requests - 1
        self.tokens += answer.prompt_tokens + answer.completion_tokens
        if not self.live:
            console.print(_answer_line(answer), markup=False, highlight=False)
            return
        counts = f"{self.failed} failed · {self.retries} retries · {self.tokens:,} tokens"
        self._bar.update(self._task, advance=1, counts=counts)

    def reviewed(self, draft: DraftOutcome) -> None:
        """Close the bar; print the reviewers' outcome line."""
        self._stop_bar()
        console.print(_outcome_line(draft.review, time.monotonic() - self.started))

    def rendered(self, draft: DraftOutcome) -> None:
        """Print the summary table and the pages, or that there is none."""
        if draft.tally is not None:
            _print_pages(draft.run_id, draft.tally, draft.pages)


def _answer_line(answer: Answer) -> str:
    verdict = (
        kind_of(answer.verdict).choice(answer.verdict) if answer.verdict else f"no valid answer ({answer.failure})"
    )
    subject = answer.job.tool.name[:40]
    if answer.job.persona.id == CHAIR_ID:  # the chair judges the pair, not one tool
        subject = f"{answer.job.tool.name[:30]} vs {answer.job.rival.name[:30]}"
    return (
        f"  {answer.job.persona.id:<9} on {subject}: {verdict} "
        f"({len(answer.attempts)} attempt{'s' if len(answer.attempts) != 1 else ''}, {answer.latency_s:.1f} s)"
    )


def _chair_lines(chair: ChairOutcome) -> list[str]:
    """What went wrong with the pair summaries, one line each, with how to get them."""
    lines = []
    if chair.not_asked:
        lines.append(
            f"chair: {_summaries(chair.not_asked)} not asked, {chair.stop_reason}; "
            "rerun the same command to ask the chair (the stored verdicts are reused)"
        )
    if chair.failed:
        lines.append(
            f"chair: {_summaries(chair.failed)} got no valid answer; rerun the same command to ask again, "
            "or write one with panel override --persona chair"
        )
    return lines


def _summaries(count: int) -> str:
    return f"{count} pair summar{'y' if count == 1 else 'ies'}"


def _outcome_line(outcome: ReviewOutcome, seconds: float) -> str:
    return (
        f"{outcome.status}: {outcome.needed} verdicts, {outcome.cached} cached, {outcome.asked} asked, "
        f"{outcome.failed} failed, {outcome.requests} requests, {outcome.tokens} tokens, {seconds:.1f} s"
    )


@app.command("render")
def render_command(
    run_id: Annotated[Optional[str], typer.Argument(help="Run id or prefix (default: the latest run).")] = None,
    db: DbOption = None,
    out: OutOption = None,
) -> None:
    """Re-render a stored run's pages without calling a model.

    Example: panel render 3f2a
    """
    settings = make_settings(db, out)
    store = Store.existing(settings.db_path)
    run_id = store.resolve_run_id(run_id)
    _print_pages(run_id, *write_run_pages(store, run_id, settings.out_dir, settings.signup_link))
