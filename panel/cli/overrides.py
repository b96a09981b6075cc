"""Editors' corrections: change a reviewer's verdict or quote, or the chair's summary, beside the model's answer."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from panel.cli.app import DbOption, OutOption, app, console, make_settings
from panel.cli.desk import login_name
from panel.cli.terminal import terminal_text
from panel.overrides import OverrideRequest, apply_override
from panel.render import write_run_pages
from panel.store import Override, Store


def _describe(override: Override, subject: str) -> str:
    changes = []
    if override.verdict is not None and override.verdict != override.model_verdict:
        changes.append(f"{override.model_verdict or 'no valid answer'} → {override.verdict}")
    if override.review is not None and override.review != override.model_review:
        changes.append("quote edited")
    if override.headline is not None:
        changes.append("headline edited")
    what = ", ".join(changes) or "back to the model's answer"
    return f"{override.persona_id} on {subject}: {what} (by {override.editor})"


@app.command("override")
def override_command(
    persona: Annotated[
        str,
        typer.Option(
            "--persona", help="Persona id (builder, skeptic, futurist, business), or 'chair' for the panel summary."
        ),
    ],
    tool: Annotated[
        Optional[str], typer.Option("--tool", help="The tool, by its name on the page (or a tool id prefix).")
    ] = None,
    run_id: Annotated[Optional[str], typer.Argument(help="Run id or prefix (default: the latest run).")] = None,
    pair: Annotated[
        Optional[int],
        typer.Option(
            "--pair",
            help="The pair's number (its page's 01, 02, ...): needed when the tool is in several pairs; "
            "the chair takes it without --tool.",
        ),
    ] = None,
    verdict: Annotated[
        Optional[str], typer.Option("--verdict", help="ship or skip (for the chair: left, right, both or neither).")
    ] = None,
    quote: Annotated[
        Optional[str],
        typer.Option(
            "--quote",
            help="The quote (or summary) the page shows instead of the model's; "
            "required where the model gave no valid answer.",
        ),
    ] = None,
    quote_file: Annotated[
        Optional[Path],
        typer.Option("--quote-file", exists=True, dir_okay=False, help="Read the quote from this UTF-8 file."),
    ] = None,
    headline: Annotated[
        Optional[str],
        typer.Option(
            "--headline",
            help="The one-line headline (the chair's, or a reviewer's); "
            "a changed verdict or pick without one drops the model's.",
        ),
    ] = None,
    note: Annotated[Optional[str], typer.Option("--note", help="Why: kept with the override.")] = None,
    editor: Annotated[
        str,
        typer.Option(
            "--editor",
            envvar="PANEL_EDITOR",
            help="Who is editing (default $PANEL_EDITOR, else [desk] editor in panel.toml, else your login name).",
        ),
    ] = "",
    revert: Annotated[
        bool, typer.Option("--revert", help="Show the model's answer again (the override history stays).")
    ] = False,
    db: DbOption = None,
    out: OutOption = None,
) -> None:
    """Change a verdict, quote or headline (or the chair's pick) of a stored run, re-render; the model's answer stays.

    Example: panel override --tool SmolVLM2-2B --persona business --verdict ship --note "free weights are the point"
    """
    if quote_file is not None:
        quote = quote_file.read_text(encoding="utf-8")
    quote = quote.strip() if quote is not None else None
    headline = headline.strip() if headline is not None else None
    request = OverrideRequest(persona, editor, tool, pair, verdict, quote, headline, note, revert)
    request.check()  # before the database is opened: a wrong option is named even where there is none
    settings = make_settings(db, out)
    request = dataclasses.replace(request, editor=editor or settings.editor or login_name())
    store = Store.existing(settings.db_path)
    run_ref = store.resolve_run_id(run_id)
    saved, target = apply_override(store, run_ref, request)
    console.print(
        f"override {saved.override_id}: {_describe(saved, target.subject)}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    for page in write_run_pages(store, run_ref, settings.out_dir, settings.signup_link)[1]:
        console.print(f"page: {page}", markup=False, highlight=False, soft_wrap=True)


@app.command("overrides")
def overrides_command(
    run_id: Annotated[Optional[str], typer.Argument(help="Run id or prefix (default: the latest run).")] = None,
    db: DbOption = None,
) -> None:
    """List a run's editor overrides, oldest first, with the model's own verdict beside each.

    Example: panel overrides 3f2a
    """
    settings = make_settings(db)
    store = Store.existing(settings.db_path)
    run_ref = store.resolve_run_id(run_id)
    table = Table(title=f"Overrides of run {run_ref}")
    for column in ("id", "when", "editor", "pair", "tool", "persona", "model said", "page says", "quote", "note"):
        table.add_column(column)
    for o in store.overrides(run_ref):
        pair = "all" if o.pair_index is None else str(o.pair_index + 1)  # rows from before pairs were recorded
        cells = (
            str(o.override_id),
            o.created_at.strftime("%Y-%m-%d %H:%M"),
            o.editor,
            pair,
            o.tool_name,
            o.persona_id,
            o.model_verdict or "—",
            o.verdict or o.model_verdict or "—",
            "edited" if o.review is not None else "model's",
            o.note or "",
        )
        table.add_row(*(terminal_text(cell) for cell in cells))  # names and notes: never markup, no escapes
    console.print(table)
