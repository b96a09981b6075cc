"""Editors' corrections: change a reviewer's verdict or quote, or the chair's summary, beside the model's answer."""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table
from rich.text import Text

from panel.chair import PICKS, ChairSummary
from panel.cli.app import DbOption, OutOption, app, console, make_settings
from panel.errors import OverrideError
from panel.render import write_pages
from panel.store import Override, Store, StoredRun
from panel.tally import CHAIR_ID, tally_run
from panel.verdict import Verdict

VERDICTS = ("ship", "skip")


def _default_editor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name (e.g. a container without /etc/passwd entry)
        return "editor"


def find_tool(run: StoredRun, tool_ref: str, persona_id: str) -> str:
    """The tool id an override of `persona_id` on `tool_ref` (a name or id prefix) applies to; OverrideError if none.

    The chair's summary belongs to its pair, stored under the pair's left tool: either tool's name finds it.
    """
    wanted = tool_ref.strip().casefold()
    for (left, right), (left_id, right_id) in zip(run.pairs, run.tool_ids):
        for card, tool_id in ((left, left_id), (right, right_id)):
            if card.name.casefold() == wanted or (len(wanted) >= 6 and tool_id.startswith(wanted)):
                return left_id if persona_id == CHAIR_ID else tool_id
    names = ", ".join(sorted({card.name for pair in run.pairs for card in pair}))
    raise OverrideError(f"--tool: run {run.run_id} has no tool '{tool_ref}' (tools: {names})")


def _check_choices(persona_id: str, verdict: str | None, quote: str | None) -> None:
    allowed = PICKS if persona_id == CHAIR_ID else VERDICTS
    if verdict is not None and verdict not in allowed:
        raise OverrideError(f"--verdict: '{verdict}' is not a {'pick' if persona_id == CHAIR_ID else 'verdict'} "
                            f"(use one of: {', '.join(allowed)})")
    # The same bound the model's own answer had to meet, read from its schema.
    text_field = ChairSummary.model_fields["summary"] if persona_id == CHAIR_ID else Verdict.model_fields["review"]
    limit = next(m.max_length for m in text_field.metadata if hasattr(m, "max_length"))
    if quote is not None and not 1 <= len(quote) <= limit:
        raise OverrideError(f"--quote: {len(quote)} characters; give 1 to {limit}")


def _describe(override: Override) -> str:
    changes = []
    if override.verdict is not None and override.verdict != override.model_verdict:
        changes.append(f"{override.model_verdict or 'no valid answer'} → {override.verdict}")
    if override.review is not None and override.review != override.model_review:
        changes.append("quote edited")
    what = ", ".join(changes) or "back to the model's answer"
    return f"{override.persona_id} on {override.tool_name}: {what} (by {override.editor})"


@app.command("override")
def override_command(
    tool: Annotated[str, typer.Option("--tool", help="The tool, by its name on the page (or a tool id prefix).")],
    persona: Annotated[str, typer.Option("--persona", help="Persona id (builder, skeptic, futurist, business), or 'chair' for the panel summary.")],
    run_id: Annotated[Optional[str], typer.Argument(help="Run id or prefix (default: the latest run).")] = None,
    verdict: Annotated[Optional[str], typer.Option("--verdict", help="ship or skip (for the chair: left, right, both or neither).")] = None,
    quote: Annotated[Optional[str], typer.Option("--quote", help="The quote (or summary) the page shows instead of the model's.")] = None,
    quote_file: Annotated[Optional[Path], typer.Option("--quote-file", exists=True, dir_okay=False, help="Read the quote from this UTF-8 file.")] = None,
    note: Annotated[Optional[str], typer.Option("--note", help="Why: kept with the override.")] = None,
    editor: Annotated[str, typer.Option("--editor", envvar="PANEL_EDITOR", help="Who is editing (default $PANEL_EDITOR, else your login name).")] = "",
    revert: Annotated[bool, typer.Option("--revert", help="Show the model's answer again (the override history stays).")] = False,
    db: DbOption = None,
    out: OutOption = None,
) -> None:
    """Change a persona's verdict or quote on a stored run and re-render its pages; the model's answer stays stored.

    Example: panel override --tool SmolVLM2-2B --persona business --verdict ship --note "free weights are the point"
    """
    if quote_file is not None:
        quote = quote_file.read_text(encoding="utf-8")
    quote = quote.strip() if quote is not None else None
    if revert and (verdict or quote):
        raise OverrideError("--revert takes no --verdict or --quote")
    if not revert and verdict is None and quote is None:
        raise OverrideError("nothing to change: give --verdict, --quote or --quote-file (or --revert)")
    _check_choices(persona, verdict, quote)
    settings = make_settings(db, out)
    store = Store(settings.db_path)
    run_ref = store.resolve_run_id(run_id)
    run = store.load_run(run_ref)
    tool_id = find_tool(run, tool, persona)
    saved = store.add_override(run_ref, tool_id, persona, editor or _default_editor(), verdict=verdict,
                               review=quote, note=note, revert=revert)
    console.print(f"override {saved.override_id}: {_describe(saved)}", markup=False, highlight=False, soft_wrap=True)
    for page in write_pages(tally_run(store.load_run(run_ref)), settings.out_dir):
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
    store = Store(settings.db_path)
    run_ref = store.resolve_run_id(run_id)
    table = Table(title=f"Overrides of run {run_ref}")
    for column in ("id", "when", "editor", "tool", "persona", "model said", "page says", "quote", "note"):
        table.add_column(column)
    for o in store.overrides(run_ref):
        cells = (str(o.override_id), o.created_at.strftime("%Y-%m-%d %H:%M"), o.editor, o.tool_name,
                 o.persona_id, o.model_verdict or "—", o.verdict or o.model_verdict or "—",
                 "edited" if o.review is not None else "model's", o.note or "")
        table.add_row(*(Text(cell) for cell in cells))  # Text: names and notes are never read as markup
    console.print(table)
