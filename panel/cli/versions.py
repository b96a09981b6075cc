"""Editors' answer versions: ask one reviewer (or the chair) again, list an item's versions, pick the one shown."""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.table import Table

from panel.ask_again import AskAgainRequest, answer_versions, ask_again, use_version
from panel.cli.app import (
    BaseUrlOption,
    DbOption,
    EndpointOption,
    MaxRetriesOption,
    MaxTokensOption,
    ModelOption,
    ModeOption,
    OutOption,
    PriceInputOption,
    PriceOutputOption,
    SeedOption,
    TemperatureOption,
    TimeoutOption,
    app,
    console,
    make_settings,
    model_settings,
)
from panel.cli.desk import login_name
from panel.cli.terminal import terminal_text
from panel.config import Settings
from panel.render import write_run_pages
from panel.store import Store

RunArgument = Annotated[Optional[str], typer.Argument(help="Run id or prefix (default: the latest run).")]
PersonaIdOption = Annotated[
    str,
    typer.Option("--persona", help="Persona id (builder, skeptic, futurist, business), or 'chair' for the summary."),
]
ToolOption = Annotated[
    Optional[str], typer.Option("--tool", help="The tool, by its name on the page (or a tool id prefix).")
]
PairOption = Annotated[
    Optional[int],
    typer.Option(
        "--pair", help="The pair's number (its page's 01, 02, ...): needed when the tool is in several pairs."
    ),
]
EditorOption = Annotated[
    str, typer.Option("--editor", envvar="PANEL_EDITOR", help="Who asks (default $PANEL_EDITOR, else your login name).")
]


def _say(line: str) -> None:
    console.print(terminal_text(line), markup=False, highlight=False, soft_wrap=True)


def _render(store: Store, run_id: str, settings: Settings) -> None:
    for page in write_run_pages(store, run_id, settings.out_dir, settings.signup_link)[1]:
        _say(f"page: {page}")


@app.command("ask-again")
def ask_again_command(
    persona: PersonaIdOption,
    run_id: RunArgument = None,
    tool: ToolOption = None,
    pair: PairOption = None,
    note: Annotated[
        Optional[str],
        typer.Option("--note", help="An instruction for the model, sent as its own message after the tool's text."),
    ] = None,
    use: Annotated[bool, typer.Option("--use", help="Show the new answer on the page at once.")] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Ask even when the same note was answered before (cached otherwise).")
    ] = False,
    editor: EditorOption = "",
    endpoint: EndpointOption = None,
    base_url: BaseUrlOption = None,
    model: ModelOption = None,
    mode: ModeOption = None,
    temperature: TemperatureOption = None,
    max_tokens: MaxTokensOption = None,
    seed: SeedOption = None,
    timeout: TimeoutOption = None,
    max_retries: MaxRetriesOption = None,
    price_input: PriceInputOption = None,
    price_output: PriceOutputOption = None,
    db: DbOption = None,
    out: OutOption = None,
) -> None:
    """Ask one reviewer (or the chair) again about one tool; the answer is kept as a new version beside the old.

    The page keeps the version it shows until you pick another (--use, or panel use-version).

    Example: panel ask-again --tool SmolVLM2-2B --persona skeptic --note "Weigh the offline use case." --use
    """
    settings = model_settings(
        db,
        out,
        endpoint_name=endpoint,
        base_url=base_url,
        model=model,
        mode=mode,
        temperature=temperature,
        max_tokens=max_tokens,
        seed=seed,
        timeout_s=timeout,
        max_retries=max_retries,
        price_input=price_input,
        price_output=price_output,
    )
    store = Store.existing(settings.db_path)
    run_ref = store.resolve_run_id(run_id)
    request = AskAgainRequest(persona, editor or settings.editor or login_name(), tool, pair, note, use, force)
    outcome = ask_again(store, run_ref, request, settings)
    versions, _ = answer_versions(store, run_ref, persona, tool, pair)
    version = next(v for v in versions if v.number == outcome.version)
    how = "cached: this question was answered before, --force asks again" if outcome.cached else "asked"
    shown = next(v.number for v in versions if v.picked)
    _say(
        f"version {version.number} of {persona} on {outcome.target.subject}: {version.verdict} ({how}); "
        f"the page shows version {shown}"
    )
    _say(outcome.cost.line())
    if use:
        _render(store, run_ref, settings)


@app.command("versions")
def versions_command(
    persona: PersonaIdOption,
    run_id: RunArgument = None,
    tool: ToolOption = None,
    pair: PairOption = None,
    db: DbOption = None,
) -> None:
    """List one item's answer versions: the model's original (0) and every ask-again, with the one the page shows.

    Example: panel versions --tool SmolVLM2-2B --persona skeptic
    """
    settings = make_settings(db)
    store = Store.existing(settings.db_path)
    run_ref = store.resolve_run_id(run_id)
    versions, target = answer_versions(store, run_ref, persona, tool, pair)
    table = Table(title=f"Versions of {persona} on {terminal_text(target.subject)} (run {run_ref})")
    for column in ("version", "shown", "when", "asked by", "verdict", "headline", "note"):
        table.add_column(column)
    for v in versions:
        cells = (
            str(v.number),
            "yes" if v.picked else "",
            v.created_at.strftime("%Y-%m-%d %H:%M"),
            v.editor or "the run",
            v.verdict or "no valid answer",
            v.headline or "",
            v.note or "",
        )
        table.add_row(*(terminal_text(cell) for cell in cells))  # model and editor text: never markup
    console.print(table)


@app.command("use-version")
def use_version_command(
    persona: PersonaIdOption,
    version: Annotated[int, typer.Option("--version", min=0, help="The version to show (0: the model's original).")],
    run_id: RunArgument = None,
    tool: ToolOption = None,
    pair: PairOption = None,
    editor: EditorOption = "",
    db: DbOption = None,
    out: OutOption = None,
) -> None:
    """Pick which answer version the page shows for one item (an override still applies on top), re-render.

    Example: panel use-version --tool SmolVLM2-2B --persona skeptic --version 0
    """
    settings = make_settings(db, out)
    store = Store.existing(settings.db_path)
    run_ref = store.resolve_run_id(run_id)
    chosen, target = use_version(
        store, run_ref, persona, version, editor or settings.editor or login_name(), tool, pair
    )
    _say(f"{persona} on {target.subject}: the page shows version {chosen.number} ({chosen.verdict})")
    _render(store, run_ref, settings)
