"""The newsletter: sign-ups, confirmations and unsubscribes as append-only events, the tokens mailed, digest sends.

Nothing is updated in place. An address's state is its latest event (subscribe: waiting for confirmation,
confirm: gets digests, unsubscribe: gets nothing); a token is stored as its sha256 only, for one purpose, and
is used up by the event that names it. Each (digest, address) send is recorded `sending` before the mail goes
to the SMTP server and `sent` (or `failed`) after, so `panel digest --send` can be rerun after any crash.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone

import duckdb

from panel.store.connection import LOCK_RETRY_S, Database

CONFIRM_TOKEN_LIFETIME = timedelta(days=7)
CONFIRMATIONS_PER_DAY = 3  # confirmation mails one address can be sent in 24 h, however often it is signed up


def _latest_kind(con: duckdb.DuckDBPyConnection, address: str) -> str | None:
    row = con.execute(
        "SELECT kind FROM subscriber_events WHERE address = ? ORDER BY created_at DESC, event_id DESC LIMIT 1",
        [address],
    ).fetchone()
    return None if row is None else str(row[0])


class SubscriberStore(Database):
    """Newsletter subscribers and digest sends (used by `panel serve`'s sign-up pages and `panel digest`)."""

    def subscribe(self, address: str, token_hash: str, wait_s: float = LOCK_RETRY_S) -> bool:
        """Record a sign-up with the hash of its confirmation token; True when a confirmation mail should go out.

        False, and nothing recorded, for an address already confirmed or sent CONFIRMATIONS_PER_DAY mails in the
        last day: one address is one subscriber however often it is signed up, and cannot be mail-bombed.
        """
        now = datetime.now(timezone.utc)
        with self.transaction(wait_s) as con:
            if _latest_kind(con, address) == "confirm":
                return False
            row = con.execute(
                "SELECT count(*) FROM subscriber_events WHERE address = ? AND kind = 'subscribe' AND created_at > ?",
                [address, now - timedelta(days=1)],
            ).fetchone()
            if row is not None and row[0] >= CONFIRMATIONS_PER_DAY:
                return False
            con.execute(
                "INSERT INTO subscriber_tokens VALUES (?, ?, 'confirm', ?, ?)",
                [token_hash, address, now, now + CONFIRM_TOKEN_LIFETIME],
            )
            con.execute(
                "INSERT INTO subscriber_events (address, kind, token_hash, created_at) VALUES (?, 'subscribe', ?, ?)",
                [address, token_hash, now],
            )
        return True

    def confirm(self, token_hash: str, wait_s: float = LOCK_RETRY_S) -> bool:
        """Confirm the sign-up a confirmation token was mailed for; False for an unknown, used or expired token.

        A token mailed before the address last unsubscribed no longer confirms it.
        """
        return self._use_token(token_hash, "confirm", wait_s)

    def unsubscribe(self, token_hash: str, wait_s: float = LOCK_RETRY_S) -> bool:
        """Unsubscribe the address a digest's unsubscribe token was mailed to; False for an unknown token.

        Using the same link again changes nothing and still answers True (the reader is unsubscribed).
        """
        return self._use_token(token_hash, "unsubscribe", wait_s)

    def _use_token(self, token_hash: str, purpose: str, wait_s: float) -> bool:
        now = datetime.now(timezone.utc)
        kind = purpose  # the event a token of this purpose adds
        with self.transaction(wait_s) as con:
            row = con.execute(
                "SELECT address, created_at FROM subscriber_tokens WHERE token_hash = ? AND purpose = ? "
                "AND (expires_at IS NULL OR expires_at > ?)",
                [token_hash, purpose, now],
            ).fetchone()
            if row is None:
                return False
            address, issued_at = row
            latest = _latest_kind(con, address)
            if latest == kind:  # already in the state this token asks for: nothing to add
                return True
            if purpose == "confirm":
                spent = con.execute(
                    "SELECT 1 FROM subscriber_events WHERE address = ? AND created_at >= ? "
                    "AND (kind = 'unsubscribe' OR (kind = 'confirm' AND token_hash = ?)) LIMIT 1",
                    [address, issued_at, token_hash],
                ).fetchall()
                if spent:  # used already, or the address unsubscribed after it was mailed
                    return False
            con.execute(
                "INSERT INTO subscriber_events (address, kind, token_hash, created_at) VALUES (?, ?, ?, ?)",
                [address, kind, token_hash, now],
            )
        return True

    def confirmed_subscribers(self) -> list[str]:
        """The addresses whose latest event is a confirmation (the ones that get digests), in sign-up order."""
        with self.reader() as con:
            return [
                row[0]
                for row in con.execute("""
                    SELECT address FROM subscriber_events
                    QUALIFY row_number() OVER (PARTITION BY address ORDER BY created_at DESC, event_id DESC) = 1
                        AND kind = 'confirm'
                    ORDER BY event_id""").fetchall()
            ]

    def digest_comparisons(self, since: datetime, until: datetime) -> list[tuple[str, int]]:
        """The comparisons a digest of [since, until) holds: (run id, pair index), oldest first.

        A comparison is a pair an editor published (`panel publish`, the desk) in the window; one published
        again after an edit counts once, at its first publication in the window.
        """
        with self.reader() as con:
            return [
                (str(run_id), int(pair_index))
                for run_id, pair_index in con.execute(
                    """SELECT run_id, pair_index FROM publications
                       WHERE published_at >= ? AND published_at < ?
                       GROUP BY run_id, pair_index
                       ORDER BY min(published_at), run_id, pair_index""",
                    [since, until],
                ).fetchall()
            ]

    def record_digest(
        self, digest_id: str, subject: str, comparisons: Sequence[tuple[str, int]], since: datetime, until: datetime
    ) -> None:
        """Record a digest once (a rerun of the same comparisons is the same digest; later calls add nothing)."""
        with self.transaction() as con:
            con.execute(
                "INSERT INTO digests VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                [digest_id, subject, json.dumps(list(comparisons)), since, until, datetime.now(timezone.utc)],
            )

    def send_statuses(self, digest_id: str) -> dict[str, str]:
        """Each address's latest send status for a digest: sending, sent or failed."""
        with self.reader() as con:
            return dict(
                con.execute(
                    """SELECT address, status FROM digest_sends WHERE digest_id = ?
                       QUALIFY row_number() OVER (PARTITION BY address ORDER BY send_id DESC) = 1""",
                    [digest_id],
                ).fetchall()
            )

    def record_sending(self, digest_id: str, address: str, unsubscribe_hash: str) -> None:
        """Record that a digest mail is about to go to the SMTP server, with the hash of its unsubscribe token."""
        now = datetime.now(timezone.utc)
        with self.transaction() as con:
            con.execute(
                "INSERT INTO subscriber_tokens VALUES (?, ?, 'unsubscribe', ?, NULL)", [unsubscribe_hash, address, now]
            )
            con.execute(
                "INSERT INTO digest_sends (digest_id, address, status, created_at) VALUES (?, ?, 'sending', ?)",
                [digest_id, address, now],
            )

    def record_sent(self, digest_id: str, address: str, status: str, detail: str | None = None) -> None:
        """Record how a send ended: `sent` (the SMTP server took it) or `failed` (a permanent refusal, `detail`)."""
        with self.transaction() as con:
            con.execute(
                "INSERT INTO digest_sends (digest_id, address, status, detail, created_at) VALUES (?, ?, ?, ?, ?)",
                [digest_id, address, status, detail, datetime.now(timezone.utc)],
            )
