"""A local SMTP server on 127.0.0.1 (aiosmtpd) that keeps every mail it accepts, for the newsletter tests.

It can hold mail: after `accept_before_hold` mails, the next one's DATA waits until release() and is then refused
with a 451 (never kept), so a test can kill a sender while a mail is on its way. `refuse` maps a recipient to a
reply, e.g. {"gone@example.org": "550 no such user"}, and `temporary` refuses the first N mails with a 451.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller


@dataclass
class Received:
    """One accepted mail: its envelope recipients and the parsed message."""

    rcpt_tos: list[str]
    message: EmailMessage

    def part(self, subtype: str) -> str:
        """The text of the message's text/`subtype` part."""
        body = self.message.get_body((subtype,))
        assert body is not None, f"no text/{subtype} part"
        return str(body.get_content())  # type: ignore[attr-defined]


@dataclass
class SmtpSink:
    """The handler aiosmtpd calls; start() serves it on a free loopback port."""

    received: list[Received] = field(default_factory=list)
    refuse: dict[str, str] = field(default_factory=dict)
    temporary: int = 0
    accept_before_hold: int | None = None
    holding: threading.Event = field(default_factory=threading.Event)
    _released: threading.Event = field(default_factory=threading.Event)
    port: int = 0
    _controller: Controller | None = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        for rcpt in envelope.rcpt_tos:
            if rcpt in self.refuse:
                return self.refuse[rcpt]
        if self.temporary > 0:
            self.temporary -= 1
            return "451 4.3.0 try again later"
        if self.accept_before_hold is not None and len(self.received) >= self.accept_before_hold:
            self.holding.set()
            while not self._released.is_set():
                await asyncio.sleep(0.02)
            return "451 4.3.0 the sender went away"
        message = message_from_bytes(envelope.original_content, policy=policy.default)
        self.received.append(Received(list(envelope.rcpt_tos), message))  # type: ignore[arg-type]
        return "250 OK"

    def release(self) -> None:
        """Let a held mail end (refused)."""
        self._released.set()

    def start(self) -> "SmtpSink":
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._controller = Controller(
            self, hostname="127.0.0.1", port=self.port, server_kwargs={"enable_SMTPUTF8": True}
        )
        self._controller.start()
        return self

    def stop(self) -> None:
        self.release()
        if self._controller is not None:
            self._controller.stop()

    def wait_for(self, count: int, timeout: float = 20) -> list[Received]:
        """The mails received once there are `count` of them; AssertionError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            assert time.monotonic() < deadline, f"{len(self.received)} mails received, expected {count}"
            time.sleep(0.02)
        return self.received

    def to(self, address: str) -> list[Received]:
        """The mails received for `address`."""
        return [mail for mail in self.received if address in mail.rcpt_tos]
