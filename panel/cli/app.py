"""The `panel` command: the Typer app, shared options, and one-line errors.

Commands live beside it, grouped by who uses them: editor.py (review, render), overrides.py (override, overrides),
versions.py (ask-again, versions, use-version), desk.py (desk, publish), newsletter.py (digest), maintainer.py
(personas, lint), maintainer_probes.py (compare, check), labels.py (labels), analyst.py (sql, export), community.py
(serve), configuration.py (config), project.py (init, setup, --version). Every command finds its project
(make_settings); they print through terminal.py's consoles.
"""

from __future__ import annotations

import importlib.metadata
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Optional

import typer

from panel.cards import load_run
from panel.cli.terminal import console, err_console  # noqa: F401  (the commands print through these)
from panel.config import Settings, project_settings
from panel.errors import PanelError
from panel.model.modes import MODES
from panel.served_model import asks_served_model, with_served_model

app = typer.Typer(
    help="A panel of LLM reviewers judges pairs of AI tools and drafts comparison pages.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

DbOption = Annotated[
    Optional[Path], typer.Option("--db", help="DuckDB file (default runs/panel.duckdb in the project, or $PANEL_DB).")
]
OutOption = Annotated[
    Optional[Path], typer.Option("--out", help="Folder for rendered pages (default runs/pages in the project).")
]
# The endpoint and persona options every model-calling command shares.
EndpointOption = Annotated[
    Optional[str],
    typer.Option(
        "--endpoint",
        help="Endpoint profile [endpoints.NAME] of panel.toml "
        "(default $PANEL_ENDPOINT, else endpoint = in panel.toml, else embedded).",
    ),
]
BaseUrlOption = Annotated[
    Optional[str],
    typer.Option(
        help="OpenAI-compatible endpoint (default $OPENAI_BASE_URL, else the profile's base_url; beats --endpoint's)."
    ),
]
ModelOption = Annotated[
    Optional[str],
    typer.Option(
        help="Model name to request "
        "(default $PANEL_MODEL, else the profile's model, else the only one the endpoint's /v1/models lists)."
    ),
]
ModeOption = Annotated[Optional[str], typer.Option(help=f"Structured-output mode: {', '.join(MODES)}.")]
ConcurrencyOption = Annotated[
    Optional[int],
    typer.Option(min=1, max=256, help="Verdict requests in flight (default 8; 1 for the embedded model)."),
]
TemperatureOption = Annotated[
    Optional[float], typer.Option(min=0, max=2, help="Sampling temperature (default 0.2, or [sampling] temperature).")
]
MaxTokensOption = Annotated[
    Optional[int],
    typer.Option(
        "--max-tokens",
        min=1,
        help="Per reply: most tokens one answer may have (default 700). The run-wide budget is --token-budget.",
    ),
]
SeedOption = Annotated[
    Optional[int],
    typer.Option("--seed", min=0, help="Sampling seed sent with every request (default 7, or [sampling] seed)."),
]
TimeoutOption = Annotated[
    Optional[float],
    typer.Option(min=0.1, help="Seconds one HTTP request may take (default 120); the SDK's tries multiply it."),
]
MaxRetriesOption = Annotated[
    Optional[int],
    typer.Option(min=0, max=10, help="SDK retries of one request on transport errors, 408/409/429/5xx (default 2)."),
]
MaxRequestsOption = Annotated[
    Optional[int], typer.Option(min=1, help="Budget: stop cleanly after this many HTTP requests (retries count).")
]
TokenBudgetOption = Annotated[
    Optional[int],
    typer.Option(
        "--token-budget",
        min=1,
        help="Budget: stop cleanly once this many prompt+completion tokens are spent in the run.",
    ),
]
PersonasDirOption = Annotated[
    Optional[Path], typer.Option("--personas-dir", help="Persona files (default personas/ in the project).")
]
PromptsDirOption = Annotated[
    Optional[Path], typer.Option("--prompts-dir", help="Prompt templates (default prompts/ in the project).")
]
# USD per million tokens (also price_input/price_output in panel.toml); the cost line and stored attempts use them.
PriceInputOption = Annotated[
    Optional[float],
    typer.Option(
        "--price-input",
        min=0,
        help="USD per million prompt tokens, for the printed and stored cost "
        "(default: unknown; the embedded model: 0).",
    ),
]
PriceOutputOption = Annotated[
    Optional[float], typer.Option("--price-output", min=0, help="USD per million completion tokens.")
]
PersonaOption = Annotated[Optional[list[str]], typer.Option("--persona", help="Only these personas (repeatable).")]
# Every command that loads run files; the name is cards.OUTSIDE_CARDS_FLAG, quoted by the error it lifts.
AllowOutsideCardsOption = Annotated[
    bool,
    typer.Option(
        "--allow-outside-cards", help="Let card paths leave the run file's folder (absolute paths, '..', symlinks)."
    ),
]

RunFilesArgument = Annotated[Optional[list[Path]], typer.Argument(help="Run files (default: every runs/*.yaml).")]


def run_files_or_all(given: list[Path] | None, settings: Settings) -> list[Path]:
    """The run files a command was given, else every runs/*.yaml of the project; BadParameter when there are none."""
    files = given or sorted(settings.runs_dir.glob("*.yaml"))
    if not files:
        raise typer.BadParameter(f"no run files given and none in {settings.runs_dir}")
    return files


# Mail: `panel serve` (confirmation mails) and `panel digest`; [smtp] and [site] in panel.toml.
SmtpHostOption = Annotated[
    Optional[str],
    typer.Option(
        "--smtp-host", help="SMTP server (default $PANEL_SMTP_HOST, else smtp.host in panel.toml, else localhost)."
    ),
]
SmtpPortOption = Annotated[
    Optional[int],
    typer.Option(
        "--smtp-port",
        min=1,
        max=65535,
        help="SMTP port (default $PANEL_SMTP_PORT, else smtp.port in panel.toml, else 25).",
    ),
]
SiteUrlOption = Annotated[
    Optional[str],
    typer.Option(
        "--site-url",
        help="Public address that links in mails point to (default site.url in panel.toml, else the server's own).",
    ),
]


# Batch mode (panel/batch/): review, compare and check send what is not cached as one Batch API batch.
BatchOption = Annotated[
    bool,
    typer.Option(
        "--batch",
        help="Send what is not cached as one Batch API batch (half price, its own rate limits); "
        "rerun the same command to collect it.",
    ),
]
WaitOption = Annotated[
    bool, typer.Option("--wait", help="With --batch: poll until the batches end, collect them and finish.")
]
ThenLiveOption = Annotated[
    bool,
    typer.Option(
        "--then-live", help="With --batch: re-ask failed lines (and ask the chair) live, not in follow-up batches."
    ),
]
PollOption = Annotated[
    float, typer.Option("--poll-seconds", min=0.0, help="With --wait: first delay between polls (doubles up to 60 s).")
]


class _State:
    debug = False


def _print_version(asked: bool) -> None:
    if asked:
        try:
            version = importlib.metadata.version("panel")
        except importlib.metadata.PackageNotFoundError:
            raise PanelError("panel is not installed as a package (pip install it to give it a version)") from None
        console.print(f"panel {version}", markup=False, highlight=False)
        raise typer.Exit()


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks instead of one-line errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", is_eager=True, callback=_print_version, help="Print panel's version and exit.")
    ] = False,
) -> None:
    """Start: init, setup. Editors: review, render. Maintainers: personas, lint, compare. Analysts: sql, export.

    Everyone: config."""
    _State.debug = debug


def make_settings(db: Path | None = None, out: Path | None = None, **flags: object) -> Settings:
    """Settings of the project around the working directory, with these command-line flags applied.

    Raises ProjectNotFound outside a project, ConfigError on a bad value in panel.toml, the environment or a flag.
    """
    return project_settings(None, db_path=db, out_dir=out, **flags)


def model_settings(
    db: Path | None = None, out: Path | None = None, run_files: Sequence[Path] = (), **flags: object
) -> Settings:
    """make_settings for a command that calls a model: a configured endpoint without a model gets the one its
    /v1/models lists (said on stderr), or a one-line error listing them.

    `run_files` are checked first, so a broken card is reported before the endpoint is asked anything.
    """
    settings = make_settings(db, out, **flags)
    if asks_served_model(settings):  # the command loads its run files anyway; only a request needs them first
        for run_file in run_files:
            load_run(run_file, settings.allow_outside_cards)
    settings, note = with_served_model(settings)
    if note:
        err_console.print(note)
    return settings


def main(argv: list[str] | None = None) -> None:
    """Entry point (argv: the arguments, default sys.argv); our errors print as one line (--debug: traceback)."""
    try:
        app(args=argv, prog_name="panel")
    except PanelError as error:
        if _State.debug:
            raise
        err_console.print(f"error: {error}")
        sys.exit(2)
