"""`panel labels`: the gold labels (editors' ship/skip per tool and persona) that compare and check score against."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from panel.cli.app import DbOption, PersonasDirOption, app, console, make_settings
from panel.labels import import_labels, make_label, save_labels
from panel.personas import load_personas
from panel.store import Store

labels_app = typer.Typer(
    help="Gold labels: editors' ship/skip per tool and persona.\n\n"
    "Example: panel labels import runs/example-labels.jsonl",
    no_args_is_help=True,
)
app.add_typer(labels_app, name="labels")


@labels_app.command("import")
def labels_import_command(
    labels_file: Annotated[Path, typer.Argument(help="JSONL: one {tool, persona?, verdict, review?} per line.")],
    source: Annotated[str, typer.Option(help="Where these labels come from.")] = "reference",
    personas_dir: PersonasDirOption = None,
    db: DbOption = None,
) -> None:
    """Import gold labels from a JSONL file; importing the same file again adds nothing.

    Example: panel labels import runs/example-labels.jsonl
    """
    settings = make_settings(db, personas_dir=personas_dir)
    known = [p.id for p in load_personas(settings.personas_dir)]
    read, added = import_labels(Store(settings.db_path), labels_file, source, known)
    console.print(f"{read} labels read, {added} new")


@labels_app.command("add")
def labels_add_command(
    tool: Annotated[str, typer.Argument(help="Tool name exactly as on its card.")],
    verdict: Annotated[str, typer.Argument(help="ship or skip.")],
    persona: Annotated[
        Optional[str], typer.Option(help="The persona this label is for (default: the tool overall).")
    ] = None,
    source: Annotated[str, typer.Option(help="Who labelled it.")] = "editor",
    personas_dir: PersonasDirOption = None,
    db: DbOption = None,
) -> None:
    """Add one editor label: ship/skip for a tool, per persona or overall.

    Example: panel labels add "SmolVLM2-2B" skip --persona business
    """
    settings = make_settings(db, personas_dir=personas_dir)
    known = [p.id for p in load_personas(settings.personas_dir)]
    added = save_labels(Store(settings.db_path), [make_label(tool, verdict, persona, source, known)])
    console.print("label added" if added else "label already present")


@labels_app.command("list")
def labels_list_command(db: DbOption = None) -> None:
    """List the labels in force (latest per tool and persona; editor overrides included).

    Example: panel labels list
    """
    labels = Store.existing(make_settings(db).db_path).gold_labels()
    table = Table(title=f"{len(labels)} gold labels")
    for column in ("Tool", "Persona", "Verdict", "Source", "Added"):
        table.add_column(column)
    for label in labels:
        table.add_row(
            label.tool_name,
            label.persona_id or "(overall)",
            label.verdict,
            label.source,
            f"{label.created_at:%Y-%m-%d}" if label.created_at else "",
        )
    console.print(table)
