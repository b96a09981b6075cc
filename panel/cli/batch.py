"""Batch mode on the command line: `panel review --batch` (with --wait, --then-live), the probes' `--batch`
(`panel compare`, `panel check`) and `panel batch` (list, status, cancel, collect, export, import)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from panel.batch.collect import collect
from panel.batch.draft import BatchDraft, BatchProgress, batch_draft
from panel.batch.offline import export_run, import_results
from panel.batch.probes import ProbeBatch, batch_probe
from panel.batch.submit import cancel, refresh, settle_pending
from panel.cli.app import (
    AllowOutsideCardsOption,
    BaseUrlOption,
    DbOption,
    EndpointOption,
    ModelOption,
    ModeOption,
    PersonaOption,
    app,
    console,
    err_console,
    make_settings,
    model_settings,
)
from panel.config import Settings
from panel.cost import RunCost
from panel.model.client import make_batch_client
from panel.review import PreparedRun
from panel.store import Store
from panel.store.batches import BatchRecord

batch_app = typer.Typer(
    help="Batches: list, status, cancel, collect; export a run for an offline engine (vLLM) and import its results.\n\n"
    "Example: panel batch list",
    no_args_is_help=True,
)
app.add_typer(batch_app, name="batch")


class _BatchPrinter(BatchProgress):
    def notice(self, line: str) -> None:
        console.print(line, markup=False, highlight=False, soft_wrap=True)

    def waiting(self, batch: object, waited_s: float) -> None:
        counts = getattr(batch, "request_counts", None)
        done = f"{counts.completed:,} of {counts.total:,} done, {counts.failed:,} failed" if counts else "no counts yet"
        console.print(f"  {getattr(batch, 'id', '?')}: {getattr(batch, 'status', '?')}, {done} ({waited_s:.0f} s)")


def review_by_batch(
    run_file: Path, settings: Settings, wait: bool, then_live: bool, personas: list[str] | None, poll_s: float
) -> bool:
    """`panel review --batch`: take the run as far as its batches allow and print where it stands.

    True when the rest goes live (--then-live): the caller runs the ordinary live review next.
    """
    draft = batch_draft(
        run_file, settings, wait=wait, then_live=then_live, personas=personas, progress=_BatchPrinter(), poll_s=poll_s
    )
    console.print(_standing(draft), markup=False, highlight=False)
    if draft.collected:
        console.print(draft.cost.line() + " (batch price)", markup=False, highlight=False)
    if draft.in_flight:
        _print_waiting(draft.in_flight, f"panel review {run_file} --batch")
        return False
    if draft.go_live:
        console.print("asking the rest live (--then-live): the failed verdicts, the chair, the pages")
        return True
    for page in draft.pages:
        console.print(f"page: {page}")
    if draft.status == "incomplete":
        _fail_incomplete(draft.reviewers.exhausted + draft.chair.exhausted, settings)
    return False


def check_batch_flags(batch: bool, wait: bool, then_live: bool) -> None:
    """Refuse --wait and --then-live without --batch (typer's one-line usage error)."""
    if (wait or then_live) and not batch:
        raise typer.BadParameter("--wait and --then-live go with --batch")


def spent_lines(live: RunCost, probe: ProbeBatch | None) -> list[str]:
    """A probe's cost lines: its batch lines at the batch price, and what it asked live (all of it without --batch)."""
    if probe is None:
        return [live.line()]
    lines = [probe.cost.line() + " (batch price)"]
    if live.prompt_tokens or live.completion_tokens:
        lines.append("live: " + live.line())
    return lines


def probe_by_batch(
    plan: Callable[[], list[PreparedRun]], settings: Settings, purpose: str, wait: bool, then_live: bool, poll_s: float
) -> ProbeBatch | None:
    """`panel compare --batch`, `panel check --batch`: fill the cache for every run `plan` returns by batch, and
    print where it stands (an endpoint without the Batch API is refused before anything is planned).

    The probe when the ordinary command is to run now (every verdict cached, or the rest goes live with
    --then-live); None while a batch is live. Exit 3 when verdicts failed every batch try.
    """
    client = make_batch_client(settings)
    probe = batch_probe(
        plan(),
        settings,
        purpose,
        wait=wait,
        then_live=then_live,
        progress=_BatchPrinter(),
        client=client,
        poll_s=poll_s,
    )
    step = probe.step
    console.print(
        f"{purpose} by batch ({probe.status}): {step.answered} of {step.needed} verdicts stored",
        markup=False,
        highlight=False,
    )
    if probe.in_flight:
        _print_waiting(probe.in_flight, f"panel {purpose} ... --batch")
        return None
    if probe.status == "live":
        console.print(f"asking the rest live (--then-live): {step.needed - step.answered} verdicts")
    elif probe.status == "incomplete":
        _fail_incomplete(step.exhausted, settings)
    return probe


def _print_waiting(in_flight: list[BatchRecord], command: str) -> None:
    names = ", ".join(b.name for b in in_flight)
    console.print(
        f"waiting for {names}: rerun `{command}` to collect "
        f"(add --wait to poll until done; `panel batch status {in_flight[0].name}` shows its counts)",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


def _fail_incomplete(exhausted: int, settings: Settings) -> None:
    err_console.print(
        f"{exhausted} verdicts got no valid answer after {settings.reasks + 1} batch tries: "
        "rerun with --then-live to ask them live",
        markup=False,
        highlight=False,
    )
    raise typer.Exit(code=3)


def _standing(draft: BatchDraft) -> str:
    r, c = draft.reviewers, draft.chair
    chair = f", chair {c.answered} of {c.needed}" if c.needed else ""
    return f"run {draft.run_id} ({draft.status}): {r.answered} of {r.needed} verdicts stored{chair}"


def _table() -> Table:
    table = Table(title="Batches (newest first)")
    for column in ("Batch", "Purpose", "State", "Requests", "Done", "Failed", "Lines stored", "Created", "Collected"):
        table.add_column(column)
    return table


@batch_app.command("list")
def list_command(db: DbOption = None) -> None:
    """List every batch of this database: its id, what it asks, its state and counts as last seen.

    Example: panel batch list
    """
    store = Store.existing(make_settings(db).db_path)
    batches = store.stored_batches()
    table = _table()
    for b in batches:
        table.add_row(*_row(store, b))
    console.print(table)


def _row(store: Store, b: BatchRecord) -> list[str]:
    return [
        b.name,
        b.purpose,
        b.state,
        f"{b.request_count:,}",
        f"{b.completed_count:,}",
        f"{b.failed_count:,}",
        f"{len(store.stored_line_ids(b.local_id)):,}",
        f"{b.created_at:%Y-%m-%d %H:%M}",
        f"{b.collected_at:%Y-%m-%d %H:%M}" if b.collected_at else "—",
    ]


def _endpoint_settings(db: Path | None, endpoint: str | None, base_url: str | None) -> Settings:
    return make_settings(db, endpoint_name=endpoint, base_url=base_url)


@batch_app.command("status")
def status_command(
    batch_id: Annotated[str, typer.Argument(help="Batch id (the endpoint's, or panel's pb_...), or a prefix.")],
    endpoint: EndpointOption = None,
    base_url: BaseUrlOption = None,
    db: DbOption = None,
) -> None:
    """Ask the endpoint where a batch stands and store it: state, requests done and failed.

    Example: panel batch status batch_abc123
    """
    settings = _endpoint_settings(db, endpoint, base_url)
    store = Store.existing(settings.db_path)
    with store.writing():
        batch = refresh(store, make_batch_client(settings), store.find_batch(batch_id))
    table = _table()
    table.add_row(*_row(store, batch))
    console.print(table)


@batch_app.command("cancel")
def cancel_command(
    batch_id: Annotated[str, typer.Argument(help="Batch id or prefix.")],
    endpoint: EndpointOption = None,
    base_url: BaseUrlOption = None,
    db: DbOption = None,
) -> None:
    """Cancel a live batch; what it finished stays, and the next collect asks only for the rest.

    Example: panel batch cancel batch_abc123
    """
    settings = _endpoint_settings(db, endpoint, base_url)
    store = Store.existing(settings.db_path)
    with store.writing():
        batch = cancel(store, make_batch_client(settings), store.find_batch(batch_id))
    console.print(f"batch {batch.name}: {batch.state}")


@batch_app.command("collect")
def collect_command(
    batch_id: Annotated[
        Optional[str], typer.Argument(help="Batch id or prefix (default: every uncollected one).")
    ] = None,
    endpoint: EndpointOption = None,
    base_url: BaseUrlOption = None,
    db: DbOption = None,
) -> None:
    """Store the lines of ended batches (twice stores nothing twice); live ones are left as they are.

    Re-asking failed lines, the chair and the pages come with `panel review RUN --batch`.

    Example: panel batch collect
    """
    settings = _endpoint_settings(db, endpoint, base_url)
    store = Store.existing(settings.db_path)
    client = make_batch_client(settings)
    with store.writing():
        settle_pending(store, client)
        chosen = (
            [store.find_batch(batch_id)]
            if batch_id
            else store.stored_batches("collected_at IS NULL AND state NOT IN ('unsent', 'exported')")
        )
        for batch in chosen:
            batch = refresh(store, client, batch)
            if batch.live:
                console.print(f"{batch.name}: {batch.state}, {batch.completed_count:,} of {batch.request_count:,} done")
                continue
            console.print(collect(store, client, batch).line(), markup=False, highlight=False)


@batch_app.command("export")
def export_command(
    run_file: Annotated[Path, typer.Argument(help="Run file, e.g. runs/example.yaml.")],
    out: Annotated[Path, typer.Option("--out", help="The JSONL file to write (vLLM run_batch's -i).")],
    endpoint: EndpointOption = None,
    base_url: BaseUrlOption = None,
    model: ModelOption = None,
    mode: ModeOption = None,
    persona: PersonaOption = None,
    allow_outside_cards: AllowOutsideCardsOption = False,
    db: DbOption = None,
) -> None:
    """Write a run's uncached requests as OpenAI batch JSONL for vLLM's run_batch or another offline engine.

    The endpoint (--base-url or --endpoint) is the server whose answers these stand for: it is part of each key.

    Example: panel batch export runs/example.yaml --out requests.jsonl --base-url http://gpu:8000/v1 --model qwen
    """
    settings = model_settings(
        db,
        None,
        [run_file],
        endpoint_name=endpoint,
        base_url=base_url,
        model=model,
        mode=mode,
        allow_outside_cards=allow_outside_cards,
    )
    batch, cached = export_run(run_file, settings, out, persona)
    if batch is None:
        console.print(f"nothing to export: all {cached} verdicts are stored")
        return
    console.print(
        f"wrote {batch.request_count:,} requests to {out} ({cached} cached; export {batch.local_id}); then: "
        f"python -m vllm.entrypoints.openai.run_batch -i {out} -o results.jsonl --model {batch.model}; "
        "panel batch import results.jsonl",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


@batch_app.command("import")
def import_command(
    results: Annotated[Path, typer.Argument(help="An offline engine's results JSONL (OpenAI batch output format).")],
    db: DbOption = None,
) -> None:
    """Store an offline engine's results for an exported run, line by line, through the live validation.

    Example: panel batch import results.jsonl
    """
    outcome = import_results(results, make_settings(db))
    console.print(outcome.line(), markup=False, highlight=False)
    if outcome.missing:
        console.print(f"{outcome.missing:,} exported requests have no valid answer: export the run again for them")
