"""Editors' desk commands: `panel desk` (edit, approve and publish in the browser) and `panel publish`."""

from __future__ import annotations

import getpass
import ipaddress
from typing import Annotated, Optional

import typer

from panel.cli.app import (
    BaseUrlOption,
    DbOption,
    EndpointOption,
    ModelOption,
    app,
    console,
    err_console,
    make_settings,
)
from panel.editorial import publish_pair
from panel.store import Store
from panel.web.desk import DeskServer

EditorOption = Annotated[
    Optional[str],
    typer.Option("--editor", help="Who edits and publishes (default $PANEL_EDITOR, else [desk] editor in panel.toml)."),
]


def login_name() -> str:
    """The login name, for an editor who named no one else ('editor' where there is none)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name (e.g. a container without an /etc/passwd entry)
        return "editor"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@app.command("desk")
def desk_command(
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on (0 picks a free one).")] = 8765,
    host: Annotated[
        str,
        typer.Option(help="Address to bind; the default keeps the desk on this machine (others print a warning)."),
    ] = "127.0.0.1",
    allow_host: Annotated[
        Optional[list[str]],
        typer.Option("--allow-host", help="Also answer for this Host name (repeatable; loopback names always)."),
    ] = None,
    editor: EditorOption = None,
    endpoint: EndpointOption = None,
    base_url: BaseUrlOption = None,
    model: ModelOption = None,
    db: DbOption = None,
) -> None:
    """Open the editor's desk: a local web app to edit, approve and publish the stored runs' pairs.

    It prints one URL with a random access token; open it in a browser (the token becomes a session cookie).
    "Ask again" and "Add a pair" ask the configured endpoint (or the embedded model), one job at a time.
    The desk holds no lock between edits: `panel review` and `panel sql` keep working beside it.
    Example: panel desk --editor "Ada Lovelace"
    """
    settings = make_settings(db, editor=editor, endpoint_name=endpoint, base_url=base_url, model=model)
    if not _is_loopback(host):
        err_console.print(
            f"warning: the desk listens on {host}: anyone who can reach it and has the URL can edit and publish",
            markup=False,
            highlight=False,
        )
    server = DeskServer(settings, host, port, allow_host or ())
    try:
        server.run(
            lambda: console.print(
                f"desk: {server.tokened_url} (Ctrl-C to stop)", markup=False, highlight=False, soft_wrap=True
            )
        )
    except KeyboardInterrupt:
        pass
    console.print("desk stopped", markup=False, highlight=False)


@app.command("publish")
def publish_command(
    run_id: Annotated[Optional[str], typer.Argument(help="Run id or prefix (default: the latest run).")] = None,
    pair: Annotated[
        Optional[int], typer.Option("--pair", min=1, help="Only this pair (1-based; default: all).")
    ] = None,
    approve: Annotated[
        bool, typer.Option("--approve", help="Approve each pair as it is now before publishing it.")
    ] = False,
    editor: EditorOption = None,
    db: DbOption = None,
) -> None:
    """Write approved pairs' final HTML and Markdown to the publish folder ([paths] publish, default publish/).

    Publishing needs an approval of the pair as it is now (the desk's Approve, or --approve); every
    publication is recorded, and publishing again after an edit replaces the files.
    Example: panel publish 3f2a --pair 1 --approve
    """
    settings = make_settings(db, editor=editor)
    store = Store.existing(settings.db_path)
    run_ref = store.resolve_run_id(run_id)
    numbers = [pair] if pair is not None else list(range(1, len(store.load_run(run_ref).pairs) + 1))
    for number in numbers:
        published = publish_pair(
            store, run_ref, number, settings.editor or login_name(), settings.publish_dir, approve=approve
        )
        console.print(
            f"published pair {number}: {published.html_path} and .md (by {published.editor})",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
