"""Sending over SMTP with the standard library: one connection, a bounded rate, retries of temporary failures.

A reply in the 4xx range, a dropped connection or a timeout is temporary: retried with exponential backoff
(tenacity), reconnecting first. A 5xx reply is permanent: PermanentFailure, which the caller records and moves
past. The password is read from the environment variable [smtp] password_env names, when the login happens.
"""

from __future__ import annotations

import os
import smtplib
import ssl
import threading
import time
from email.message import EmailMessage
from types import TracebackType

from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from panel.config import Settings
from panel.errors import MailError
from panel.mail.messages import header_text

SMTP_TIMEOUT_S = 30.0
_LOOPBACK = ("localhost", "127.0.0.1", "::1", "[::1]")


class TemporaryFailure(Exception):
    """The SMTP server or the connection failed in a way worth retrying (4xx, disconnect, timeout)."""


class PermanentFailure(Exception):
    """The SMTP server refused this mail for good (5xx): `reply` is its code and text, cleaned."""

    def __init__(self, reply: str) -> None:
        super().__init__(reply)
        self.reply = reply


def _reply(code: int, text: bytes | str) -> str:
    raw = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    return f"{code} {header_text(raw, 200)}"


class SmtpSender:
    """One SMTP connection from Settings (host, port, security, login), used as `with SmtpSender(s) as smtp:`.

    send() waits so that no more than smtp_max_per_minute mails leave per minute, and retries temporary failures
    `tries` times in all with backoff from `backoff_s` (doubling, at most 30 s).
    """

    def __init__(self, settings: Settings, tries: int = 4, backoff_s: float = 1.0) -> None:
        self.settings, self.tries, self.backoff_s = settings, tries, backoff_s
        self.interval_s = 60.0 / settings.smtp_max_per_minute
        self._smtp: smtplib.SMTP | None = None
        self._last_sent = -float("inf")
        self._lock = threading.Lock()  # panel serve sends confirmations from more than one request

    @property
    def where(self) -> str:
        """host:port, for messages."""
        return f"{self.settings.smtp_host}:{self.settings.smtp_port}"

    def __enter__(self) -> "SmtpSender":
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Say QUIT and close the connection, if one is open."""
        if self._smtp is not None:
            try:
                self._smtp.quit()
            except (smtplib.SMTPException, OSError):
                self._smtp.close()
            self._smtp = None

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        if s.smtp_user and s.smtp_security == "none" and s.smtp_host not in _LOOPBACK:
            raise MailError(
                f"[smtp] user is set but security is none: the password would cross the network in clear to "
                f'{self.where}; set security = "starttls" or "tls" in panel.toml'
            )
        try:
            if s.smtp_security == "tls":
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                    s.smtp_host, s.smtp_port, timeout=SMTP_TIMEOUT_S, context=ssl.create_default_context()
                )
            else:
                smtp = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=SMTP_TIMEOUT_S)
                if s.smtp_security == "starttls":
                    smtp.starttls(context=ssl.create_default_context())
            if s.smtp_user:
                smtp.login(s.smtp_user, self._password())
        except smtplib.SMTPAuthenticationError:
            raise MailError(
                f"the SMTP server {self.where} refused the login of [smtp] user: check it and ${s.smtp_password_env}"
            ) from None
        except (smtplib.SMTPException, OSError) as error:
            raise TemporaryFailure(f"cannot reach the SMTP server {self.where} ({type(error).__name__})") from None
        return smtp

    def _password(self) -> str:
        password = os.environ.get(self.settings.smtp_password_env)
        if not password:
            raise MailError(f"[smtp] user is set but ${self.settings.smtp_password_env} is empty: export the password")
        return password

    def send(self, message: EmailMessage, to: str) -> None:
        """Hand one message for `to` (the only envelope recipient) to the server; PermanentFailure on a 5xx.

        Raises MailError naming the server when temporary failures outlast the retries.
        """
        with self._lock:
            retrying = Retrying(
                stop=stop_after_attempt(self.tries),
                wait=wait_exponential(multiplier=self.backoff_s, max=30),
                retry=retry_if_exception_type(TemporaryFailure),
                reraise=True,
            )
            try:
                for attempt in retrying:
                    with attempt:
                        self._send_once(message, to)
            except TemporaryFailure as error:
                raise MailError(f"{error}; tried {self.tries} times: rerun later (nothing is sent twice)") from None

    def _send_once(self, message: EmailMessage, to: str) -> None:
        wait = self._last_sent + self.interval_s - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        if self._smtp is None:
            self._smtp = self._connect()
        self._last_sent = time.monotonic()
        try:
            self._smtp.send_message(message, from_addr=self.settings.smtp_sender, to_addrs=[to])
        except smtplib.SMTPRecipientsRefused as error:
            code, text = next(iter(error.recipients.values()))
            self._classify(code, text)
        except smtplib.SMTPResponseException as error:  # sender refused, data refused, ...
            self._classify(error.smtp_code, error.smtp_error)
        except (smtplib.SMTPServerDisconnected, OSError) as error:
            self._drop()
            raise TemporaryFailure(f"the SMTP server {self.where} dropped the connection ({type(error).__name__})")

    def _classify(self, code: int, text: bytes | str) -> None:
        if 500 <= code < 600:
            self._reset()
            raise PermanentFailure(_reply(code, text))
        self._drop()
        raise TemporaryFailure(f"the SMTP server {self.where} answered {_reply(code, text)}")

    def _reset(self) -> None:
        # After a refused mail the session is ready for the next one once reset; a broken one is dropped.
        try:
            if self._smtp is not None:
                self._smtp.rset()
        except (smtplib.SMTPException, OSError):
            self._drop()

    def _drop(self) -> None:
        if self._smtp is not None:
            self._smtp.close()
            self._smtp = None
