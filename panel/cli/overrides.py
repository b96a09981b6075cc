"""Editors' corrections: change a reviewer's verdict or quote, or the chair's summary, beside the model's answer."""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Optional

import typer
from pydantic.fields import FieldInfo
from rich.table import Table

from panel.chair import PICKS, ChairSummary
from panel.cli.app import DbOption, OutOption, app, console, make_settings
from panel.cli.terminal import terminal_text
from panel.errors import OverrideError
from panel.render import write_run_pages
from panel.store import Override, Store, StoredRun, StoredVerdict
from panel.tally import CHAIR_ID
from panel.verdict import Verdict

VERDICTS = ("ship", "skip")


def _default_editor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name (e.g. a container without /etc/passwd entry)
        return "editor"


@dataclass(frozen=True)
class OverrideTarget:
    """The run item an override applies to: its pair, the tool it is stored under, and how to name it."""

    pair_index: int
    tool_id: str
    subject: str


def find_target(run: StoredRun, tool_ref: str | None, persona_id: str, pair_number: int | None) -> OverrideTarget:
    """The item an override of `persona_id` on `tool_ref` (a name or id prefix) in pair `pair_number` applies to.

    The chair's summary belongs to its pair, stored under the pair's left tool: either tool's name finds it, or
    --pair alone. Raises OverrideError when the tool or pair is unknown, or the tool is in several pairs.
    """
    if pair_number is not None and not 1 <= pair_number <= len(run.pairs):
        raise OverrideError(f"--pair: run {run.run_id} has pairs 1 to {len(run.pairs)}, not {pair_number}")
    indexes = range(len(run.pairs)) if pair_number is None else [pair_number - 1]
    if tool_ref is None:
        if persona_id != CHAIR_ID or pair_number is None:
            raise OverrideError("--tool: give the tool's name (the chair's summary also takes --pair N alone)")
        found = [(pair_number - 1, run.tool_ids[pair_number - 1][0])]
    else:
        wanted = tool_ref.strip().casefold()
        found = [(index, tool_id) for index in indexes
                 for card, tool_id in zip(run.pairs[index], run.tool_ids[index])
                 if card.name.casefold() == wanted or (len(wanted) >= 6 and tool_id.startswith(wanted))]
    if not found:
        names = ", ".join(sorted({card.name for index in indexes for card in run.pairs[index]}))
        where = f"pair {pair_number} of run" if pair_number is not None else "run"
        raise OverrideError(f"--tool: {where} {run.run_id} has no tool '{tool_ref}' (tools: {names})")
    pairs = sorted({index for index, _ in found})
    if len(pairs) > 1:
        raise OverrideError(f"--pair: '{tool_ref}' is in pairs {', '.join(str(i + 1) for i in pairs)} "
                            f"of run {run.run_id}; give --pair N")
    index, tool_id = found[0]
    left, right = run.pairs[index]
    if persona_id == CHAIR_ID:
        return OverrideTarget(index, run.tool_ids[index][0], f"pair {index + 1} ({left.name} vs {right.name})")
    name = next(card.name for card, card_id in zip(run.pairs[index], run.tool_ids[index]) if card_id == tool_id)
    return OverrideTarget(index, tool_id, name + (f" in pair {index + 1}" if len(run.pairs) > 1 else ""))


def _text_limit(field: FieldInfo) -> int:
    # The same bound the model's own answer had to meet, read from its schema.
    return next(m.max_length for m in field.metadata if hasattr(m, "max_length"))


def _check_choices(persona_id: str, verdict: str | None, quote: str | None, headline: str | None) -> None:
    allowed = PICKS if persona_id == CHAIR_ID else VERDICTS
    if verdict is not None and verdict not in allowed:
        raise OverrideError(f"--verdict: '{verdict}' is not a {'pick' if persona_id == CHAIR_ID else 'verdict'} "
                            f"(use one of: {', '.join(allowed)})")
    answer = ChairSummary if persona_id == CHAIR_ID else Verdict
    quote_field = answer.model_fields["summary" if persona_id == CHAIR_ID else "review"]
    headline_field = answer.model_fields["headline"]
    for option, text, field in (("--quote", quote, quote_field), ("--headline", headline, headline_field)):
        limit = _text_limit(field)
        if text is not None and not 1 <= len(text) <= limit:
            raise OverrideError(f"{option}: {len(text)} characters; give 1 to {limit}")


def _check_complete(current: StoredVerdict, verdict: str | None, quote: str | None) -> None:
    """OverrideError when the model gave no valid answer and the page would be left without a verdict or quote."""
    if current.valid:
        return
    # With no valid answer, what the page shows can only come from this override or an earlier one.
    shown = (("--verdict", verdict, current.verdict), ("--quote", quote, current.review))
    missing = [option for option, given, kept in shown if given is None and kept is None]
    if missing:
        raise OverrideError(f"{' and '.join(missing)}: the model gave no valid answer here, so the page needs yours")


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
    persona: Annotated[str, typer.Option("--persona", help="Persona id (builder, skeptic, futurist, business), or 'chair' for the panel summary.")],
    tool: Annotated[Optional[str], typer.Option("--tool", help="The tool, by its name on the page (or a tool id prefix).")] = None,
    run_id: Annotated[Optional[str], typer.Argument(help="Run id or prefix (default: the latest run).")] = None,
    pair: Annotated[Optional[int], typer.Option("--pair", help="The pair's number (its page's 01, 02, ...): needed when the tool is in several pairs; the chair takes it without --tool.")] = None,
    verdict: Annotated[Optional[str], typer.Option("--verdict", help="ship or skip (for the chair: left, right, both or neither).")] = None,
    quote: Annotated[Optional[str], typer.Option("--quote", help="The quote (or summary) the page shows instead of the model's; required where the model gave no valid answer.")] = None,
    quote_file: Annotated[Optional[Path], typer.Option("--quote-file", exists=True, dir_okay=False, help="Read the quote from this UTF-8 file.")] = None,
    headline: Annotated[Optional[str], typer.Option("--headline", help="The one-line headline (the chair's, or a reviewer's); a changed verdict or pick without one drops the model's.")] = None,
    note: Annotated[Optional[str], typer.Option("--note", help="Why: kept with the override.")] = None,
    editor: Annotated[str, typer.Option("--editor", envvar="PANEL_EDITOR", help="Who is editing (default $PANEL_EDITOR, else your login name).")] = "",
    revert: Annotated[bool, typer.Option("--revert", help="Show the model's answer again (the override history stays).")] = False,
    db: DbOption = None,
    out: OutOption = None,
) -> None:
    """Change a persona's verdict, quote or headline (the chair's pick) on a stored run and re-render its pages; the model's answer stays stored.

    Example: panel override --tool SmolVLM2-2B --persona business --verdict ship --note "free weights are the point"
    """
    if quote_file is not None:
        quote = quote_file.read_text(encoding="utf-8")
    quote = quote.strip() if quote is not None else None
    headline = headline.strip() if headline is not None else None
    if revert and (verdict or quote or headline):
        raise OverrideError("--revert takes no --verdict, --quote or --headline")
    if not revert and verdict is None and quote is None and headline is None:
        raise OverrideError("nothing to change: give --verdict, --quote, --quote-file or --headline (or --revert)")
    _check_choices(persona, verdict, quote, headline)
    settings = make_settings(db, out)
    store = Store.existing(settings.db_path)
    run_ref = store.resolve_run_id(run_id)
    run = store.load_run(run_ref)
    target = find_target(run, tool, persona, pair)
    current = run.verdicts.get((target.pair_index, target.tool_id, persona))
    if current is None:
        raise OverrideError(f"--persona: run {run_ref} has no verdict by '{persona}' on {target.subject}")
    if not revert:
        _check_complete(current, verdict, quote)
    with store.writing():  # refused at once while a review or `panel serve` writes this database
        saved = store.add_override(run_ref, target.tool_id, persona, editor or _default_editor(), verdict=verdict,
                                   review=quote, note=note, revert=revert, pair_index=target.pair_index,
                                   headline=headline)
    console.print(f"override {saved.override_id}: {_describe(saved, target.subject)}", markup=False,
                  highlight=False, soft_wrap=True)
    for page in write_run_pages(store, run_ref, settings.out_dir)[1]:
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
        cells = (str(o.override_id), o.created_at.strftime("%Y-%m-%d %H:%M"), o.editor, pair, o.tool_name,
                 o.persona_id, o.model_verdict or "—", o.verdict or o.model_verdict or "—",
                 "edited" if o.review is not None else "model's", o.note or "")
        table.add_row(*(terminal_text(cell) for cell in cells))  # names and notes: never markup, no escapes
    console.print(table)
