"""Voter tokens for `panel serve`: issued and signed by the server, never stored, and the CSRF tokens bound to them."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import re
import secrets
from pathlib import Path

from panel.errors import ServeError

_TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}")  # reader id . HMAC-SHA256


class VoterKeys:
    """Readers' cookie tokens, issued and signed by this server, and the CSRF tokens bound to them.

    A token is a random reader id and its HMAC-SHA256 under the server's secret (load_voter_secret), so a
    made-up token is told apart from an issued one without storing any token.
    """

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def issue(self) -> str:
        """A fresh voter token for a new reader's cookie: `<reader id>.<signature>`."""
        reader_id = secrets.token_urlsafe(16)
        return f"{reader_id}.{self._signature(reader_id)}"

    def is_issued(self, value: str | None) -> bool:
        """True only for a token this server issued (constant-time check of its signature)."""
        if value is None or _TOKEN_PATTERN.fullmatch(value) is None:
            return False
        reader_id, signature = value.split(".")
        return hmac.compare_digest(self._signature(reader_id), signature)

    @staticmethod
    def voter_id(token: str) -> str:
        """What the database stores for a reader: a hash, so an export cannot be used to vote as them."""
        return hashlib.sha256(token.encode("ascii")).hexdigest()

    def csrf_token(self, token: str) -> str:
        """The token a vote form must carry for this reader's cookie."""
        return hmac.new(self._secret, b"vote:" + token.encode("ascii"), hashlib.sha256).hexdigest()

    def csrf_ok(self, token: str, csrf: str) -> bool:
        """True when `csrf` was issued by this server for this reader's cookie."""
        # compare_digest refuses non-ASCII text with a TypeError; a form can carry any percent-encoded character.
        return csrf.isascii() and hmac.compare_digest(self.csrf_token(token), csrf)

    def _signature(self, reader_id: str) -> str:
        digest = hmac.new(self._secret, b"reader:" + reader_id.encode("ascii"), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def voter_secret_path(db_path: Path) -> Path:
    """Where a database's voter secret lives: a 0600 file beside it, e.g. runs/panel.duckdb.voter-secret."""
    return db_path.with_name(db_path.name + ".voter-secret")


def load_voter_secret(db_path: Path) -> bytes:
    """The secret that signs this database's voter tokens, created (0600) on first use; ServeError if unusable.

    A file beside the database rather than a table, so `panel sql` and `panel export` (which read every
    table) never hand it to anyone who could then mint voter tokens.
    """
    path = voter_secret_path(db_path)
    if not path.exists():
        _create_voter_secret(path)
    try:
        mode = path.stat().st_mode
        secret = bytes.fromhex(path.read_text(encoding="ascii").strip())
    except (OSError, UnicodeDecodeError, ValueError):
        secret, mode = b"", 0
    if mode & 0o077:
        raise ServeError(f"{path}: the voter secret is open to other users; run chmod 600 on it")
    if len(secret) < 32:
        raise ServeError(f"{path}: unreadable voter secret; delete it to make a new one (readers then get new cookies)")
    return secret


def _create_voter_secret(path: Path) -> None:
    # Written whole to a private temporary file, then linked into place: never a partial secret file.
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    try:
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_hex(32) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):  # made meanwhile by another process: that one stands
            os.link(partial, path)
    except OSError as error:
        raise ServeError(f"{path}: cannot create the voter secret ({error.strerror})") from None
    finally:
        partial.unlink(missing_ok=True)
