"""Maintainers' probes, which ask the model: compare (what a prompt edit changes), check (swaps, blinded names)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from panel.answer_kinds import kind_of
from panel.answers import Answer
from panel.calibration import calibration
from panel.cli.app import (
    AllowOutsideCardsOption,
    BaseUrlOption,
    BatchOption,
    ConcurrencyOption,
    DbOption,
    EndpointOption,
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
    RunFilesArgument,
    SeedOption,
    TemperatureOption,
    ThenLiveOption,
    WaitOption,
    app,
    console,
    model_settings,
    run_files_or_all,
)
from panel.cli.batch import check_batch_flags, probe_by_batch, spent_lines
from panel.cli.terminal import markup_text
from panel.compare import Comparison, compare, compare_runs
from panel.compare_report import render_compare_html, report_name
from panel.consistency import BLINDED, SWAPPED, ConsistencyReport, check, check_runs
from panel.cost import dollars
from panel.store import Store
from panel.tally import percent as percent_text
from panel.trust import corrected_rate_line


def _rate(value: float | None, percent: bool = False) -> str:
    if value is None:
        return "—"
    return percent_text(value) if percent else f"{value:.2f}"


def _progress(answer: Answer) -> None:
    verdict = (
        kind_of(answer.verdict).choice(answer.verdict)
        if answer.verdict
        else f"no valid answer ({answer.failure or ''})"
    )
    console.print(f"  asked {answer.job.persona.id} on {answer.job.tool.name[:40]}: {verdict}")


def _compare_table(result: Comparison) -> Table:
    table = Table(title="Before → after, per persona")
    for column in (
        "Persona",
        "Flipped",
        "Ship rate",
        "Accuracy",
        "Balanced acc.",
        "Cohen's κ",
        "Labelled",
        "Mean conf.",
        "Tokens",
        "Cost",
    ):
        table.add_column(column, justify="left" if column == "Persona" else "right")
    for p in result.personas:
        b, a = result.before[p], result.after[p]
        flips = sum(1 for item in result.flips if item.persona_id == p)
        table.add_row(
            p,
            f"{flips} of {a.verdicts}",
            f"{_rate(b.ship_rate, True)} → {_rate(a.ship_rate, True)}",
            f"{_rate(b.accuracy)} → {_rate(a.accuracy)}",
            f"{_rate(b.balanced_accuracy)} → {_rate(a.balanced_accuracy)}",
            f"{_rate(b.kappa)} → {_rate(a.kappa)}",
            f"{b.labelled} → {a.labelled}",
            f"{_rate(b.mean_confidence)} → {_rate(a.mean_confidence)}",
            f"{b.tokens} → {a.tokens}",
            f"{dollars(b.cost)} → {dollars(a.cost)}",
        )
    return table


@app.command("compare")
def compare_command(
    run_files: RunFilesArgument = None,
    persona: PersonaOption = None,
    base: Annotated[
        Optional[list[str]],
        typer.Option(
            "--base",
            help="Stored version(s) for the before side "
            "(hash prefix; default: the version each prompt's latest review used).",
        ),
    ] = None,
    candidate: Annotated[
        Optional[list[str]],
        typer.Option("--candidate", help="Stored version(s) for the after side (default: the working tree)."),
    ] = None,
    price_input: PriceInputOption = None,
    price_output: PriceOutputOption = None,
    html: Annotated[
        Optional[Path], typer.Option("--html", help="Where to write the HTML report (default <out>/compare/).")
    ] = None,
    personas_dir: PersonasDirOption = None,
    prompts_dir: PromptsDirOption = None,
    endpoint: EndpointOption = None,
    base_url: BaseUrlOption = None,
    model: ModelOption = None,
    mode: ModeOption = None,
    concurrency: ConcurrencyOption = None,
    temperature: TemperatureOption = None,
    max_tokens: MaxTokensOption = None,
    seed: SeedOption = None,
    allow_outside_cards: AllowOutsideCardsOption = False,
    db: DbOption = None,
    out: OutOption = None,
    batch: BatchOption = False,
    wait: WaitOption = False,
    then_live: ThenLiveOption = False,
    poll_seconds: PollOption = 5.0,
) -> None:
    """Show what a persona/template edit changes: flipped verdicts and agreement with gold labels, before → after.

    With --batch both sides' missing verdicts go out as one Batch API batch; rerun (or --wait) to collect it.

    Example: panel compare runs/example.yaml --persona skeptic
    """
    check_batch_flags(batch, wait, then_live)
    settings = model_settings(
        db,
        out,
        run_files or [],
        endpoint_name=endpoint,
        base_url=base_url,
        model=model,
        mode=mode,
        concurrency=concurrency,
        temperature=temperature,
        max_tokens=max_tokens,
        seed=seed,
        price_input=price_input,
        price_output=price_output,
        personas_dir=personas_dir,
        prompts_dir=prompts_dir,
        allow_outside_cards=allow_outside_cards,
    )
    store = Store(settings.db_path)
    files = run_files_or_all(run_files, settings)
    probe = None
    if batch:
        plan = functools.partial(compare_runs, files, settings, store, base, candidate, persona)
        probe = probe_by_batch(plan, settings, "compare", wait, then_live, poll_seconds)
        if probe is None:
            return
    result = compare(files, settings, store, base, candidate, persona, on_answer=_progress)
    for name, old_version, new_version in result.changes():
        console.print(f"{name}: {old_version} → {new_version}")
    console.print(
        f"requests: before {result.requests['before']}, after {result.requests['after']} (cached answers cost none)"
    )
    for line in spent_lines(result.spent, probe):
        console.print(line, markup=False, highlight=False)
    console.print(_compare_table(result))
    for rate in store.corrected_rates(persona):
        console.print(corrected_rate_line(rate), markup=False, highlight=False)
    console.print(calibration((item.gold, item.after) for item in result.items).line(), markup=False)
    console.print(f"{len(result.flips)} verdict(s) flipped")
    for item in result.flips:
        before, after = item.before, item.after
        if before is None or after is None:  # a flip has both sides; this only narrows the types
            continue
        label = f" (label: {item.gold})" if item.gold else ""
        console.print(
            f"\n{item.persona_id} on {item.tool_name}{label}: {before.verdict} → {after.verdict}", style="bold"
        )
        for heading, v in (("before", before), ("after", after)):
            console.print(f"  {heading}: {v.headline} (confidence {_rate(v.confidence)})")
            console.print(f"    {v.review}", style="dim")
    path = html or settings.out_dir / "compare" / report_name(result)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_compare_html(result), encoding="utf-8")
    console.print(f"\nreport: {path}")


def _check_table(report: ConsistencyReport) -> Table:
    table = Table(title=f"Consistency of run {report.run_id}")
    for column in (
        "Persona",
        "Verdicts",
        "Ship rate",
        "Labelled base rate",
        "Swapped flips",
        "Blinded flips",
        "Contradictions",
        "Problems",
    ):
        table.add_column(column, justify="left" if column in ("Persona", "Problems") else "right")
    for p in report.personas:
        flips = {v: f"{p.flips[v][0]}/{p.flips[v][1]} ({_rate(p.flip_rate(v), True)})" for v in (SWAPPED, BLINDED)}
        table.add_row(
            p.persona_id,
            str(p.verdicts),
            _rate(p.ship_rate, True),
            _rate(p.base_rate, True),
            flips[SWAPPED],
            flips[BLINDED],
            str(len(p.contradictions)),
            "; ".join(p.problems) or "ok",
        )
    return table


@app.command("check")
def check_command(
    run_file: Annotated[
        Optional[Path],
        typer.Argument(help="Run file whose verdicts to probe (default runs/example.yaml in the project)."),
    ] = None,
    sample: Annotated[Optional[int], typer.Option(min=1, help="Verdicts to re-ask per probe (default: all).")] = None,
    sample_seed: Annotated[
        int,
        typer.Option(
            "--sample-seed", help="Seed for choosing the sample (--seed is the sampling seed sent to the model)."
        ),
    ] = 7,
    persona: PersonaOption = None,
    max_flip_rate: Annotated[float, typer.Option(min=0, max=1, help="Fail a persona above this flip rate.")] = 0.25,
    tolerance: Annotated[
        float, typer.Option(min=0, max=1, help="Fail a ship rate further than this from the labelled base rate.")
    ] = 0.25,
    personas_dir: PersonasDirOption = None,
    prompts_dir: PromptsDirOption = None,
    endpoint: EndpointOption = None,
    base_url: BaseUrlOption = None,
    model: ModelOption = None,
    mode: ModeOption = None,
    concurrency: ConcurrencyOption = None,
    temperature: TemperatureOption = None,
    max_tokens: MaxTokensOption = None,
    seed: SeedOption = None,
    price_input: PriceInputOption = None,
    price_output: PriceOutputOption = None,
    allow_outside_cards: AllowOutsideCardsOption = False,
    db: DbOption = None,
    batch: BatchOption = False,
    wait: WaitOption = False,
    then_live: ThenLiveOption = False,
    poll_seconds: PollOption = 5.0,
) -> None:
    """Re-ask a sample with tools swapped and names blinded; count flips, contradictions, drift. Exit 1 on failure.

    With --batch the run's and the probes' missing verdicts go out as one Batch API batch; rerun (or --wait) to
    collect it.

    Example: panel check runs/example.yaml --sample 4
    """
    check_batch_flags(batch, wait, then_live)
    settings = model_settings(
        db,
        None,
        [run_file] if run_file else [],
        endpoint_name=endpoint,
        base_url=base_url,
        model=model,
        mode=mode,
        concurrency=concurrency,
        temperature=temperature,
        max_tokens=max_tokens,
        seed=seed,
        price_input=price_input,
        price_output=price_output,
        personas_dir=personas_dir,
        prompts_dir=prompts_dir,
        allow_outside_cards=allow_outside_cards,
    )
    path = run_file or settings.runs_dir / "example.yaml"
    probe = None
    if batch:
        plan = functools.partial(check_runs, path, settings, sample, sample_seed, persona)
        probe = probe_by_batch(plan, settings, "check", wait, then_live, poll_seconds)
        if probe is None:
            return
    report = check(path, settings, Store(settings.db_path), sample, sample_seed, persona, max_flip_rate, tolerance)
    console.print(_check_table(report))
    for p in report.personas:
        for tool, why in p.contradictions:
            console.print(f"  contradiction: {p.persona_id} on {tool}: {why}")
    console.print(
        f"panel ship rate {_rate(report.panel_ship_rate, True)} vs labelled base rate "
        f"{_rate(report.panel_base_rate, True)}; {report.requests} requests made"
    )
    for line in spent_lines(report.spent, probe):
        console.print(line, markup=False, highlight=False)
    for problem in report.problems:
        console.print(f"[red]panel:[/red] {markup_text(problem)}", markup=True)
    if report.failed:
        raise typer.Exit(code=1)
