"""Subscribers' addresses, checked and normalised by email-validator, and the one-purpose tokens mailed to them."""

from __future__ import annotations

import hashlib
import secrets

from email_validator import EmailNotValidError, validate_email

from panel.errors import MailError

MAX_ADDRESS_LENGTH = 254  # RFC 5321's limit on a forward path, less its angle brackets


def normalise_address(text: str) -> str:
    """The address in its normal form (Unicode NFC, lowercased); MailError naming what is wrong.

    The local part is lowercased too: mail providers treat it case-insensitively, and Reader@ and reader@ must be
    one subscriber. Syntax only: no DNS look-up, so a sign-up never waits on the network (the confirmation proves it).
    """
    if len(text) > MAX_ADDRESS_LENGTH:
        raise MailError(f"an email address is at most {MAX_ADDRESS_LENGTH} characters")
    try:
        checked = validate_email(text.strip(), check_deliverability=False, allow_quoted_local=False)
    except EmailNotValidError as error:
        raise MailError(f"not a valid email address: {str(error)[:160]}") from None
    address = str(checked.normalized).lower()
    if len(address) > MAX_ADDRESS_LENGTH or any(ch in address for ch in "\r\n<>,;\"'"):
        raise MailError("not a valid email address")
    return address


def new_token() -> tuple[str, str]:
    """A fresh random token for a link in a mail, and the hash the database keeps instead of it."""
    token = secrets.token_urlsafe(32)
    return token, token_hash(token)


def token_hash(token: str) -> str:
    """What the database stores for a token: its sha256, so a leaked database confirms or unsubscribes no one."""
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()
