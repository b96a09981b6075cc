"""Editors' command: `panel digest`, the week's comparisons mailed to the newsletter's confirmed subscribers."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated, Optional

import typer

from panel.cli.app import DbOption, SiteUrlOption, SmtpHostOption, SmtpPortOption, app, console, make_settings
from panel.errors import ConfigError
from panel.mail.digest import DEFAULT_SITE_URL, build_digest, send_digest, write_preview
from panel.mail.smtp import SmtpSender
from panel.store import Store


def parse_since(text: str | None, now: datetime) -> datetime:
    """--since as a UTC moment: an ISO date or date-time (UTC unless it says otherwise); default a week ago."""
    if text is None:
        return now - timedelta(days=7)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"--since takes a date such as 2026-06-01 or 2026-06-01T09:00 (got {text[:40]!r})") from None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


@app.command("digest")
def digest_command(
    since: Annotated[
        Optional[str], typer.Option(help="Start of the window, e.g. 2026-06-01 (default: 7 days ago); it ends now.")
    ] = None,
    preview: Annotated[
        Optional[Path], typer.Option(help="Write the mail as DIR/digest-ID.eml and its HTML part DIR/digest-ID.html.")
    ] = None,
    send: Annotated[
        bool, typer.Option("--send", help="Send it to every confirmed subscriber not sent it yet.")
    ] = False,
    smtp_host: SmtpHostOption = None,
    smtp_port: SmtpPortOption = None,
    site_url: SiteUrlOption = None,
    db: DbOption = None,
) -> None:
    """Build the week's published comparisons into one digest mail; preview it, or send it.

    Rerunning --send sends only what was not sent: every (digest, subscriber) send is recorded.
    Example: panel digest --since 2026-06-01 --preview runs
    """
    settings = make_settings(db, smtp_host=smtp_host, smtp_port=smtp_port, site_url=site_url)
    store = Store.existing(settings.db_path)
    now = datetime.now(timezone.utc)
    window = (parse_since(since, now), now)
    site = settings.site_url or DEFAULT_SITE_URL
    digest = build_digest(store, *window, site)
    say = lambda line: console.print(line, markup=False, highlight=False, soft_wrap=True)  # noqa: E731
    say(f"digest {digest.digest_id}: {len(digest.items)} comparison{'s' if len(digest.items) != 1 else ''}")
    for item in digest.items:
        say(f"  {item.title}: {item.verdict}")
    if preview is not None:
        eml, html = write_preview(digest, preview, settings.smtp_sender, site)
        say(f"preview: {eml} and {html}")
    if not send:
        subscribers = len(store.confirmed_subscribers())
        say(f"{subscribers} confirmed subscriber{'s' if subscribers != 1 else ''}; --send sends it")
        return
    with SmtpSender(settings) as smtp:
        report = send_digest(store, digest, smtp, site, window)
    line = f"sent {report.sent}, refused {report.failed}, already sent before {report.already}"
    if report.resent:
        line += f" ({report.resent} left mid-send by an interrupted run, sent now)"
    say(line + f" via {smtp.where}")
