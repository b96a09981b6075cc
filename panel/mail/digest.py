"""`panel digest`: the week's comparisons in one mail, previewed as files or sent once to every confirmed subscriber.

Sending is safe to repeat. Each (digest, subscriber) send is recorded `sending` (committed) before the mail goes to
the SMTP server and `sent` after the server accepts it; a rerun skips `sent` and `failed` (a permanent 5xx) and
sends the rest, `sending` included: a run killed while a mail was on its way left it `sending`, and almost always
undelivered. The one crash that can deliver a mail twice is one in the milliseconds between the server's
acceptance and the `sent` commit; such a resend carries the same Message-ID, so a mail server or client can drop
it. One sender at a time per database (an flock beside it), so two `--send`s never race each other.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

from panel.errors import MailError
from panel.mail.addresses import new_token
from panel.mail.messages import Digest, DigestItem, digest_message
from panel.mail.smtp import PermanentFailure, SmtpSender
from panel.store import Store
from panel.tally import PairTally, tally_run

DEFAULT_SITE_URL = "http://127.0.0.1:8000"  # `panel serve`'s own address with its default flags
PREVIEW_ADDRESS = "subscriber@example.org"


def pair_path(run_id: str, pair_index: int) -> str:
    """The served path of a pair's page (as panel serve answers it), e.g. /runs/3f2a9c1b0d4e/pairs/1."""
    return f"/runs/{quote(run_id, safe='')}/pairs/{pair_index + 1}"


def _verdict(pair: PairTally) -> str:
    if pair.pick == "both":
        return f"ship either: {pair.left.tool.name} and {pair.right.tool.name} win for different jobs"
    if pair.pick == "neither":
        return "ship with neither"
    if pair.picked:
        return f"ship with {pair.picked[0].tool.name}"
    return "no panel summary yet"


def build_digest(store: Store, since: datetime, until: datetime, site_url: str) -> Digest:
    """The digest of the comparisons of [since, until), each linking to its page under `site_url`.

    Raises MailError when the window holds none (an empty digest is never sent).
    """
    comparisons = store.digest_comparisons(since, until)
    if not comparisons:
        raise MailError(
            f"no comparisons published between {since:%Y-%m-%d %H:%M} and {until:%Y-%m-%d %H:%M} UTC: "
            "nothing to send (give --since an earlier date)"
        )
    tallies = {run_id: tally_run(store.load_run(run_id)) for run_id in dict.fromkeys(r for r, _ in comparisons)}
    items = []
    for run_id, pair_index in comparisons:
        pair = tallies[run_id].pairs[pair_index]
        chair = pair.chair if pair.pick else None
        items.append(
            DigestItem(
                title=f"{pair.left.tool.name} vs {pair.right.tool.name}",
                verdict=_verdict(pair),
                headline=chair.headline if chair else None,
                summary=chair.review if chair else None,
                ships=tuple((side.tool.name, side.ship_percent) for side in pair.tools),
                link=site_url.rstrip("/") + pair_path(run_id, pair_index),
            )
        )
    digest_id = hashlib.sha256(json.dumps(comparisons).encode()).hexdigest()[:16]
    first = items[0].title + (f" and {len(items) - 1} more" if len(items) > 1 else "")
    return Digest(digest_id, f"Weekly AI Tool Verdicts: {first}", tuple(items), tuple(comparisons))


def unsubscribe_url(site_url: str, token: str) -> str:
    """The one-click unsubscribe link of a digest mail (GET shows a button; POST, as mail clients do, unsubscribes)."""
    return f"{site_url.rstrip('/')}/newsletter/unsubscribe?token={quote(token, safe='')}"


def write_preview(digest: Digest, folder: Path, sender: str, site_url: str) -> tuple[Path, Path]:
    """Write the digest as a subscriber would get it: `<id>.eml` and its HTML part `<id>.html`; return both paths.

    The preview's unsubscribe link carries a token that was never issued (it unsubscribes no one).
    """
    folder.mkdir(parents=True, exist_ok=True)
    message = digest_message(digest, sender, PREVIEW_ADDRESS, unsubscribe_url(site_url, "preview"))
    eml, html = folder / f"digest-{digest.digest_id}.eml", folder / f"digest-{digest.digest_id}.html"
    eml.write_bytes(message.as_bytes())
    part = message.get_body(("html",))
    assert part is not None
    html.write_text(part.get_content(), encoding="utf-8")
    return eml, html


@dataclass
class SendReport:
    """What one `panel digest --send` did: mails sent, refused for good, and already sent before."""

    sent: int = 0
    failed: int = 0
    already: int = 0
    resent: int = 0  # of `sent`: left `sending` by an interrupted run


@contextmanager
def _one_sender(store: Store) -> Iterator[None]:
    path = store.path.with_name(store.path.name + ".digest.lock")
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise MailError(f"{store.path}: another panel digest --send is sending; wait for it to finish") from None
        yield


def send_digest(
    store: Store,
    digest: Digest,
    smtp: SmtpSender,
    site_url: str,
    window: tuple[datetime, datetime],
    on_send: Callable[[str, str], None] = lambda address, outcome: None,
) -> SendReport:
    """Send the digest to every confirmed subscriber it has not reached yet; `on_send(address, outcome)` after each.

    Raises MailError (after recording what was sent) when the SMTP server keeps failing: rerun to send the rest.
    """
    report = SendReport()
    with _one_sender(store):
        store.record_digest(digest.digest_id, digest.subject, digest.comparisons, *window)
        done = store.send_statuses(digest.digest_id)
        for address in store.confirmed_subscribers():
            status = done.get(address)
            if status in ("sent", "failed"):
                report.already += 1
                continue
            token, token_hash = new_token()
            store.record_sending(digest.digest_id, address, token_hash)
            message = digest_message(digest, smtp.settings.smtp_sender, address, unsubscribe_url(site_url, token))
            try:
                smtp.send(message, address)
            except PermanentFailure as refusal:
                store.record_sent(digest.digest_id, address, "failed", refusal.reply)
                report.failed += 1
                on_send(address, f"refused: {refusal.reply}")
                continue
            store.record_sent(digest.digest_id, address, "sent")
            report.sent += 1
            report.resent += status == "sending"
            on_send(address, "sent")
    return report
