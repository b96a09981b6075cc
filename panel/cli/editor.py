"""Editors' commands: review a run file, re-render a stored run."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from panel.ask import Answer
from panel.chair import ChairOutcome, summarize_run
from panel.cli.app import AllowOutsideCardsOption
from panel.cli.app import (BaseUrlOption, ConcurrencyOption, DbOption, ModelOption, ModeOption, OutOption,
                           PersonaOption, PersonasDirOption, PriceInputOption, PriceOutputOption,
                           PromptsDirOption, app, console, err_console, make_settings)
from panel.config import Settings
from panel.cost import Prices, run_cost
from panel.endpoints import missing_key_warning
from panel.errors import BudgetExceeded, EndpointError
from panel.render import write_run_pages
from panel.review import ReviewOutcome, prepare_run, review
from panel.store import SETTLE_WAIT_S, Store
from panel.tally import CHAIR_ID, RunTally


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


def _render(store: Store, run_id: str, settings: Settings) -> list[Path]:
    tally, pages = write_run_pages(store, run_id, settings.out_dir)
    if not pages:  # an empty draft would pass for a review
        err_console.print(f"no page written: run {run_id} has no valid verdict", markup=False, highlight=False)
        return pages
    console.print(_summary_table(tally))
    for page in pages:
        console.print(f"page: {page}")
    return pages


@app.command("review")
def review_command(
    run_file: Annotated[Path, typer.Argument(help="Run file naming the tool pairs, e.g. runs/example.yaml.")],
    base_url: BaseUrlOption = None,
    model: ModelOption = None,
    mode: ModeOption = None,
    concurrency: ConcurrencyOption = None,
    persona: PersonaOption = None,
    personas_dir: PersonasDirOption = None,
    prompts_dir: PromptsDirOption = None,
    refresh: Annotated[bool, typer.Option(help="Ask again even for cached verdicts; old ones stay as history.")] = False,
    timeout: Annotated[Optional[float], typer.Option(min=0.1, help="Seconds one HTTP request may take (default 120); the SDK's tries multiply it.")] = None,
    max_retries: Annotated[Optional[int], typer.Option(min=0, max=10, help="SDK retries of one request on transport errors, 408/409/429/5xx (default 2).")] = None,
    max_requests: Annotated[Optional[int], typer.Option(min=1, help="Budget: stop cleanly after this many HTTP requests (retries count).")] = None,
    max_tokens: Annotated[Optional[int], typer.Option(min=1, help="Budget: stop cleanly once this many prompt+completion tokens are spent.")] = None,
    price_input: PriceInputOption = None,
    price_output: PriceOutputOption = None,
    allow_outside_cards: AllowOutsideCardsOption = False,
    db: DbOption = None,
    out: OutOption = None,
) -> None:
    """Ask every persona for a verdict on every tool of a run file, store them, render the pages.

    Cached verdicts are not asked again: rerun the same command to resume a stopped or killed run.

    Example: panel review runs/example.yaml --concurrency 16 --max-requests 500
    """
    settings = make_settings(db, out, base_url=base_url, model=model, mode=mode, concurrency=concurrency,
                             timeout_s=timeout, max_retries=max_retries, max_requests=max_requests,
                             max_tokens_total=max_tokens, personas_dir=personas_dir, prompts_dir=prompts_dir,
                             allow_outside_cards=allow_outside_cards, price_input=price_input,
                             price_output=price_output)
    prepared = prepare_run(run_file, settings, persona)
    store = Store(settings.db_path)
    if warning := missing_key_warning(settings):
        err_console.print(warning, markup=False, highlight=False, soft_wrap=True)
    where = "embedded model" if settings.embedded else settings.base_url
    console.print(f"run {prepared.run_id}: {len(prepared.jobs)} verdicts from {where} "
                  f"({settings.model_name}, mode {settings.structured_mode})")
    started = time.monotonic()
    try:  # Ctrl-C at any step (the chair, the render, the wait for a reader) keeps what was received
        with _ReviewProgress(len(prepared.jobs)) as progress:
            outcome = review(prepared, settings, store, refresh=refresh, on_answer=progress.advance,
                             on_start=progress.start)
        console.print(_outcome_line(outcome, time.monotonic() - started))
        chair = summarize_run(store, outcome.run_id, settings, refresh=refresh, after=outcome,
                              on_answer=lambda answer: console.print(_answer_line(answer), markup=False,
                                                                     highlight=False))
        _render(store, outcome.run_id, settings)
        console.print(run_cost(outcome.answers + chair.answers, Prices.of(settings)).line())
        _settle(store, SETTLE_WAIT_S)
    except KeyboardInterrupt:
        _settle(store, wait_s=0)  # whoever pressed Ctrl-C wants out, not a wait for readers
        err_console.print("interrupted: the answers received so far are stored; rerun the same command to resume")
        raise typer.Exit(code=130) from None
    if error := outcome.endpoint_error():
        raise error
    if chair.endpoint_fault:
        raise EndpointError(f"{chair.endpoint_fault} (every verdict is stored, the pair summaries are not; "
                            "rerun the same command once fixed)")
    if outcome.stop_reason:
        raise BudgetExceeded(f"{outcome.stop_reason}: {outcome.stored} of {outcome.needed} verdicts stored; "
                             "rerun the same command to resume (raise or drop the budget flag)")
    for line in _chair_lines(chair):
        err_console.print(line, markup=False, highlight=False, soft_wrap=True)
    if outcome.failed or chair.failed or chair.not_asked:
        raise typer.Exit(code=3)


def _settle(store: Store, wait_s: float) -> None:
    """Fold the run journal before exiting, waiting up to `wait_s` for readers; say so if it must stay."""
    if store.fold_journal(wait_s=min(wait_s, 1.0)):
        return
    if wait_s > 1.0:
        err_console.print(f"another process (a panel sql query?) holds {store.path}: waiting up to {wait_s:g} s "
                          "to store the journaled answers", markup=False, highlight=False, soft_wrap=True)
        if store.fold_journal(wait_s=wait_s):
            return
    err_console.print(f"the answers are safe in {store.journal.path}; the next panel command that writes "
                      "this database stores them", markup=False, highlight=False, soft_wrap=True)


class _ReviewProgress:
    """A live progress bar on a terminal (verdicts, failures, retries, tokens); one line per answer otherwise."""

    def __init__(self, total: int) -> None:
        self.live = console.is_terminal
        self.failed = self.retries = self.tokens = 0
        self._bar = Progress(TextColumn("verdicts"), BarColumn(), MofNCompleteColumn(),
                             TextColumn("{task.fields[counts]}"), TimeElapsedColumn(),
                             console=console, disable=not self.live)
        self._task = self._bar.add_task("review", total=total, counts="")

    def __enter__(self) -> _ReviewProgress:
        self._bar.__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._bar.__exit__(*exc_info)

    def start(self, outcome: ReviewOutcome) -> None:
        """Show what the run needs: cached verdicts count as done."""
        if not self.live:
            console.print(f"{outcome.cached} cached, {outcome.needed - outcome.cached} to ask")
        self._bar.update(self._task, total=outcome.needed, completed=outcome.cached, counts="")

    def advance(self, answer: Answer) -> None:
        """Count one landed answer."""
        self.failed += answer.verdict is None
        self.retries += answer.requests - 1
        self.tokens += answer.prompt_tokens + answer.completion_tokens
        if not self.live:
            console.print(_answer_line(answer), markup=False, highlight=False)
            return
        counts = f"{self.failed} failed · {self.retries} retries · {self.tokens:,} tokens"
        self._bar.update(self._task, advance=1, counts=counts)


def _answer_line(answer: Answer) -> str:
    verdict = answer.verdict.verdict if answer.verdict else f"no valid answer ({answer.failure})"
    subject = answer.job.tool.name[:40]
    if answer.job.persona.id == CHAIR_ID:  # the chair judges the pair, not one tool
        subject = f"{answer.job.tool.name[:30]} vs {answer.job.rival.name[:30]}"
    return (f"  {answer.job.persona.id:<9} on {subject}: {verdict} "
            f"({len(answer.attempts)} attempt{'s' if len(answer.attempts) != 1 else ''}, {answer.latency_s:.1f} s)")


def _chair_lines(chair: ChairOutcome) -> list[str]:
    """What went wrong with the pair summaries, one line each, with how to get them."""
    lines = []
    if chair.not_asked:
        lines.append(f"chair: {_summaries(chair.not_asked)} not asked, {chair.stop_reason}; "
                     "rerun the same command to ask the chair (the stored verdicts are reused)")
    if chair.failed:
        lines.append(f"chair: {_summaries(chair.failed)} got no valid answer; rerun the same command to ask again, "
                     "or write one with panel override --persona chair")
    return lines


def _summaries(count: int) -> str:
    return f"{count} pair summar{'y' if count == 1 else 'ies'}"


def _outcome_line(outcome: ReviewOutcome, seconds: float) -> str:
    return (f"{outcome.status}: {outcome.needed} verdicts, {outcome.cached} cached, {outcome.asked} asked, "
            f"{outcome.failed} failed, {outcome.requests} requests, {outcome.tokens} tokens, {seconds:.1f} s")


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
    _render(store, store.resolve_run_id(run_id), settings)
