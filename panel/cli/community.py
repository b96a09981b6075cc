"""Readers' command: serve the pages with community ship/skip votes."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from panel.cli.app import DbOption, SiteUrlOption, SmtpHostOption, SmtpPortOption, app, console, make_settings
from panel.store import Store
from panel.web.serve import ServeLimits, VoteServer
from panel.web.vote_writer import VoteWriter

DEFAULT_LIMITS = ServeLimits()


@app.command("serve")
def serve_command(
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on (0 picks a free one).")] = 8000,
    host: Annotated[
        str, typer.Option(help="Address to bind; the default keeps the server on this machine.")
    ] = "127.0.0.1",
    burst: Annotated[
        int, typer.Option(min=1, help="Votes a reader may cast at once before the rate limit applies.")
    ] = DEFAULT_LIMITS.burst,
    votes_per_second: Annotated[
        float, typer.Option(min=0.001, help="Sustained votes per second per reader.")
    ] = DEFAULT_LIMITS.votes_per_second,
    new_readers_per_minute: Annotated[
        int, typer.Option(min=1, help="New voter cookies per client address per minute.")
    ] = DEFAULT_LIMITS.new_readers_per_minute,
    votes_per_minute_per_address: Annotated[
        int, typer.Option(min=1, help="Votes per client address per minute, whatever its cookies.")
    ] = DEFAULT_LIMITS.votes_per_minute_per_address,
    allow_host: Annotated[
        Optional[list[str]],
        typer.Option(
            "--allow-host",
            help="Also answer for this Host name, e.g. votes.example.org (repeatable; loopback names always).",
        ),
    ] = None,
    smtp_host: SmtpHostOption = None,
    smtp_port: SmtpPortOption = None,
    site_url: SiteUrlOption = None,
    db: DbOption = None,
) -> None:
    """Serve the stored pairs' pages on a local web server where readers vote ship or skip, and sign up for the digest.

    The server is the database's only writer while it runs (panel sql and exports still read it).
    Example: panel serve --port 8000
    """
    settings = make_settings(db, smtp_host=smtp_host, smtp_port=smtp_port, site_url=site_url)
    limits = ServeLimits(
        burst=burst,
        votes_per_second=votes_per_second,
        new_readers_per_minute=new_readers_per_minute,
        votes_per_minute_per_address=votes_per_minute_per_address,
    )
    server = VoteServer(Store(settings.db_path), host, port, limits, allow_host or (), settings)
    try:
        server.run(lambda: console.print(f"serving {server.url}/ (Ctrl-C to stop)"))
    except KeyboardInterrupt:
        pass
    writer = server.app.writer if server.app else None
    console.print(stop_summary(writer), markup=False, highlight=False, soft_wrap=True)


def stop_summary(writer: VoteWriter | None) -> str:
    """What `panel serve` says when it stops: the votes it stored, and where any still wait."""
    committed, batches, folds = (writer.committed, writer.batches, writer.folds) if writer else (0, 0, 0)
    line = (
        f"stopped: {committed} vote{'s' if committed != 1 else ''} stored this session "
        f"({batches} journal write{'s' if batches != 1 else ''}, "
        f"{folds} database commit{'s' if folds != 1 else ''})"
    )
    if writer is not None and writer.unfolded:
        reason = writer.fold_error or "another process held the database"
        line += (
            f"; some still wait in {writer.store.journal.path} ({reason}): the next panel command that "
            "opens the database stores them"
        )
    return line
