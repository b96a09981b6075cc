"""Maintainers' commands on the prompt texts: personas (every stored version), lint (every render, no model).

Probing a prompt edit with the model is maintainer_probes.py (compare, check); gold labels are labels.py.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.table import Table

from panel.cli.app import (
    AllowOutsideCardsOption,
    BaseUrlOption,
    DbOption,
    EndpointOption,
    ModeOption,
    PersonasDirOption,
    PromptsDirOption,
    RunFilesArgument,
    app,
    console,
    make_settings,
    run_files_or_all,
)
from panel.cli.terminal import markup_text
from panel.compare_sides import resolve_version
from panel.lint import default_token_budget, lint
from panel.personas import load_personas, load_templates
from panel.store import Store


@app.command("personas")
def personas_command(
    show: Annotated[
        Optional[str], typer.Option("--show", help="Print the stored text of this version (hash prefix).")
    ] = None,
    personas_dir: PersonasDirOption = None,
    prompts_dir: PromptsDirOption = None,
    db: DbOption = None,
) -> None:
    """List every persona and template version: its hash, first use and verdicts; mark the working tree's.

    Example: panel personas --show 3f2a9c1b
    """
    settings = make_settings(db, personas_dir=personas_dir, prompts_dir=prompts_dir)
    versions = Store.existing(settings.db_path).prompt_versions()
    if show:
        console.print(resolve_version(versions, show).text)
        return
    current = {p.id: p.content_hash for p in load_personas(settings.personas_dir)}
    current["templates"] = load_templates(settings.prompts_dir).content_hash
    table = Table(title="Prompt versions (* = working tree)")
    for column in ("Prompt", "Version", "", "First used", "Last used", "Verdicts"):
        table.add_column(column, justify="right" if column == "Verdicts" else "left")
    stored = set()
    for v in versions:
        name = {"persona": v.name, "templates": "templates"}.get(v.kind, v.kind)
        stored.add((name, v.content_hash))
        table.add_row(
            name,
            v.content_hash[:12],
            "*" if current.get(name) == v.content_hash else "",
            f"{v.first_used_at:%Y-%m-%d %H:%M}" if v.first_used_at else "never",
            f"{v.last_used_at:%Y-%m-%d %H:%M}" if v.last_used_at else "—",
            str(v.verdict_count),
        )
    for name, digest in current.items():
        if (name, digest) not in stored:
            table.add_row(name, digest[:12], "*", "not yet used", "—", "0")
    console.print(table)


@app.command("lint")
def lint_command(
    run_files: RunFilesArgument = None,
    personas_dir: PersonasDirOption = None,
    prompts_dir: PromptsDirOption = None,
    endpoint: EndpointOption = None,
    mode: ModeOption = None,
    base_url: BaseUrlOption = None,
    max_prompt_tokens: Annotated[
        Optional[int],
        typer.Option(
            "--max-prompt-tokens", min=1, help="Max prompt tokens (default: 4096 context minus the reply's max tokens)."
        ),
    ] = None,
    allow_outside_cards: AllowOutsideCardsOption = False,
) -> None:
    """Render every persona x template x card without a model and check it; exit 1 on any error (for CI).

    Example: panel lint runs/example.yaml --prompts-dir prompts
    """
    settings = make_settings(
        personas_dir=personas_dir,
        prompts_dir=prompts_dir,
        endpoint_name=endpoint,
        mode=mode,
        base_url=base_url,
        allow_outside_cards=allow_outside_cards,
    )
    report = lint(run_files_or_all(run_files, settings), settings, max_prompt_tokens)
    for finding in report.findings:
        colour = "red" if finding.severity == "error" else "yellow"
        console.print(
            f"[{colour}]{finding.severity}[/{colour}] {markup_text(finding.where)}: {markup_text(finding.message)}",
            markup=True,
        )
        if finding.example:
            console.print(f"    first seen: {finding.example}", style="dim")
    budget = max_prompt_tokens or default_token_budget(settings)
    console.print(
        f"{report.renders} renders checked (mode {settings.structured_mode}); largest prompt "
        f"~{report.largest_prompt} of {budget} tokens ({report.token_counter}); "
        f"{len(report.errors)} errors, {len(report.findings) - len(report.errors)} warnings"
    )
    if report.errors:
        raise typer.Exit(code=1)
