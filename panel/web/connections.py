"""How `panel serve` holds connections: a deadline for each request, its headers on every answer, and room for all.

uvicorn (0.54, pinned) bounds only the idle time after a response (timeout_keep_alive): a socket that
never sends, or sends its headers or body a byte at a time, stays open as long as its client likes, and
enough of them push every other reader over limit_concurrency (503). request_deadline_protocol is
uvicorn's own h11 protocol plus one timer: it starts when the connection opens or a response completes
(the server is waiting for a request) and stops when the request's headers and body are all in; if it
fires first, the connection is closed. The protocol's h11 connection also puts the server's security
headers on every response that lacks them, so the answers uvicorn makes itself (400 for a request it
cannot parse, 503 past the connection limit), which never reach the app, carry them too.
connections_that_fit raises the open-file limit so that the connection limit, not the file limit, is what
a crowd of sockets runs into.
"""

from __future__ import annotations

import asyncio
import resource
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import DEFAULT_MAX_INCOMPLETE_EVENT_SIZE, H11Protocol

# h11 states of the client's side in which the server is still waiting for (the rest of) a request.
_RECEIVING = (h11.IDLE, h11.SEND_BODY)


class _HeadedConnection(h11.Connection):
    """An h11 server connection adding `headers` to each response without them (the app's own already have them)."""

    def __init__(self, headers: tuple[tuple[bytes, bytes], ...], max_incomplete_event_size: int) -> None:
        super().__init__(h11.SERVER, max_incomplete_event_size)
        self._headers = headers

    def send(self, event: h11.Event) -> bytes | None:  # type: ignore[override]
        if isinstance(event, h11.Response):
            present = {name for name, _ in event.headers}
            missing = [(name, value) for name, value in self._headers if name not in present]
            if missing:
                event = h11.Response(
                    status_code=event.status_code,
                    headers=[*event.headers, *missing],
                    reason=event.reason,
                    http_version=event.http_version,
                )
        return super().send(event)


class _DeadlineH11Protocol(H11Protocol):
    request_deadline_s = 10.0
    response_headers: tuple[tuple[bytes, bytes], ...] = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        size = self.config.h11_max_incomplete_event_size
        self.conn = _HeadedConnection(
            self.response_headers, DEFAULT_MAX_INCOMPLETE_EVENT_SIZE if size is None else size
        )
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def handle_events(self) -> None:
        # Also runs when a response completes and the next cycle starts: that arms the next request's deadline.
        super().handle_events()
        if self.conn.their_state in _RECEIVING:
            self._arm()  # a no-op while armed: the deadline counts from when the server began to wait
        else:
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._deadline is None:
            self._deadline = self.loop.call_later(self.request_deadline_s, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()  # an app waiting for the body gets http.disconnect


def request_deadline_protocol(seconds: float, headers: dict[str, str]) -> type[asyncio.Protocol]:
    """uvicorn's h11 protocol closing any connection that has not sent a whole request within `seconds`.

    Every response it sends carries `headers` (name -> value), uvicorn's own 400 and 503 included.
    """
    encoded = tuple((name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items())
    return type(
        "RequestDeadlineH11Protocol",
        (_DeadlineH11Protocol,),
        {"request_deadline_s": seconds, "response_headers": encoded},
    )


def connections_that_fit(connections: int, spare: int = 128) -> int:
    """How many of `connections` sockets this process can hold, raising its open-file limit (to the hard one) to fit.

    Past the file limit the server could not even accept a connection to answer 503; `spare` is left for the
    database, the templates and the listening socket.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = connections + spare
    if soft != resource.RLIM_INFINITY and soft < wanted:
        soft = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return connections if soft == resource.RLIM_INFINITY else max(1, min(connections, soft - spare))
