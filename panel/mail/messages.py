"""The mails panel sends, as multipart EmailMessages: the sign-up confirmation and the digest.

Every text in them (tool names, the chair's summary, vendor text) is cleaned as on pages (render.neutralise, through
the pages' jinja environment: HTML escaped, control and bidi characters removed). A header value additionally has
every line break and control character turned into a space, so no field can add a header or a recipient.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate

from panel.render import mail_template, neutralise

MAX_SUBJECT = 150
_UNSAFE_IN_HEADER = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]+")


def header_text(value: object, limit: int = MAX_SUBJECT) -> str:
    """`value` fit for one header line: cleaned as on pages, no CR/LF or other control character, at most `limit`."""
    text = " ".join(_UNSAFE_IN_HEADER.sub(" ", neutralise(value)).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


@dataclass(frozen=True)
class DigestItem:
    """One comparison in a digest: its title, the panel's verdict and summary, ship % per tool, its page."""

    title: str
    verdict: str
    headline: str | None
    summary: str | None
    ships: tuple[tuple[str, str], ...]  # (tool name, ship %)
    link: str


@dataclass(frozen=True)
class Digest:
    """A digest: the comparisons of a window, its id (a hash of them: the same ones are the same digest), subject."""

    digest_id: str
    subject: str
    items: tuple[DigestItem, ...]
    comparisons: tuple[tuple[str, int], ...]  # (run id, pair index) of each item


def _message(subject: str, sender: str, to: str, message_id: str) -> EmailMessage:
    message = EmailMessage(policy=SMTP)
    message["Subject"] = header_text(subject)
    message["From"] = sender
    message["To"] = to
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = message_id
    return message


def _domain(sender: str) -> str:
    return header_text(sender.rpartition("@")[2].strip("> "), 100) or "panel.invalid"


def digest_message(digest: Digest, sender: str, to: str, unsubscribe_url: str) -> EmailMessage:
    """The digest for one subscriber: text and HTML parts, List-Unsubscribe (one-click) headers.

    Its Message-ID is the same for the same digest and address, so a mail resent after a crash in the moment
    between the SMTP server's acceptance and its record is recognisable as the same mail.
    """
    person = hashlib.sha256(to.encode("utf-8")).hexdigest()[:16]
    message = _message(digest.subject, sender, to, f"<{digest.digest_id}.{person}@{_domain(sender)}>")
    message["List-Unsubscribe"] = f"<{unsubscribe_url}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message["List-Id"] = f"Weekly AI Tool Verdicts <digest.{_domain(sender)}>"
    context = {"digest": digest, "unsubscribe_url": unsubscribe_url}
    message.set_content(mail_template("digest.txt.j2").render(**context))
    message.add_alternative(mail_template("digest.html.j2").render(**context), subtype="html")
    return message


def confirmation_message(sender: str, to: str, confirm_url: str, message_key: str) -> EmailMessage:
    """The double opt-in mail: one link that confirms the sign-up; nothing is sent to the address before it."""
    message = _message(
        "Confirm your sign-up to Weekly AI Tool Verdicts", sender, to, f"<confirm.{message_key[:24]}@{_domain(sender)}>"
    )
    message.set_content(mail_template("confirm.txt.j2").render(confirm_url=confirm_url))
    return message
