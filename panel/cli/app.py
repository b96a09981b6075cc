"""The `panel` command: the Typer app, shared options, and one-line errors.

Commands live beside it, grouped by who uses them: editor.py (review, render, override),
maintainer.py (personas, lint, compare, check, labels), analyst.py (sql, export), community.py (serve).
They print through terminal.py's consoles.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from panel.cli.terminal import console, err_console  # noqa: F401  (the commands print through these)
from panel.config import MODES, Settings, settings_from_env
from panel.errors import PanelError

app = typer.Typer(help="A panel of LLM reviewers judges pairs of AI tools and drafts comparison pages.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)

DbOption = Annotated[Optional[Path], typer.Option("--db", help="DuckDB file (default runs/panel.duckdb, or $PANEL_DB).")]
OutOption = Annotated[Optional[Path], typer.Option("--out", help="Folder for rendered pages (default runs/pages).")]
# The endpoint and persona options every model-calling command shares.
BaseUrlOption = Annotated[Optional[str], typer.Option(help="OpenAI-compatible endpoint (default $OPENAI_BASE_URL, else the embedded model).")]
ModelOption = Annotated[Optional[str], typer.Option(help="Model name to request.")]
ModeOption = Annotated[Optional[str], typer.Option(help=f"Structured-output mode: {', '.join(MODES)}.")]
ConcurrencyOption = Annotated[Optional[int], typer.Option(min=1, max=256, help="Verdict requests in flight (default 8; 1 for the embedded model).")]
# USD per million tokens (also price_input/price_output in panel.toml); the cost line and stored attempts use them.
PriceInputOption = Annotated[Optional[float], typer.Option("--price-input", min=0, help="USD per million prompt tokens, for the printed and stored cost (default: unknown; the embedded model: 0).")]
PriceOutputOption = Annotated[Optional[float], typer.Option("--price-output", min=0, help="USD per million completion tokens.")]
PersonasDirOption = Annotated[Optional[Path], typer.Option("--personas-dir", help="Persona files (default personas/).")]
PromptsDirOption = Annotated[Optional[Path], typer.Option("--prompts-dir", help="Prompt templates (default prompts/).")]
PersonaOption = Annotated[Optional[list[str]], typer.Option("--persona", help="Only these personas (repeatable).")]
# Every command that loads run files; the name is cards.OUTSIDE_CARDS_FLAG, quoted by the error it lifts.
AllowOutsideCardsOption = Annotated[bool, typer.Option(
    "--allow-outside-cards", help="Let card paths leave the run file's folder (absolute paths, '..', symlinks).")]


class _State:
    debug = False


@app.callback()
def _main(debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks instead of one-line errors.")] = False) -> None:
    """Editors: review, render. Maintainers: personas, lint, compare. Analysts: sql, export."""
    _State.debug = debug


def make_settings(db: Path | None = None, out: Path | None = None, **flags: object) -> Settings:
    """Settings from the environment with these command-line flags applied."""
    return settings_from_env(db_path=db, out_dir=out, **flags)


def main(argv: list[str] | None = None) -> None:
    """Entry point (argv: the arguments, default sys.argv); our errors print as one line (--debug: traceback)."""
    try:
        app(args=argv, prog_name="panel")
    except PanelError as error:
        if _State.debug:
            raise
        err_console.print(f"error: {error}")
        sys.exit(2)
