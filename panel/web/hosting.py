"""What every served app shares: security headers on every answer, the host check, one-line errors, and the runner.

`panel serve` (serve.py) and `panel desk` (desk.py) are both a Starlette app wrapped by `guarded`: the Host
header is checked against the allow-list before routing (no DNS rebinding, no redirect to a foreign host), and
every response, the framework's own 400/404/405/413/500 included, carries the app's security headers and CSP.
AppServer binds a socket and runs uvicorn with the per-request deadline protocol (connections.py), in the
foreground (run) or from a background thread (`with`), so both commands bind, bound and stop the same way.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Self

import uvicorn
from starlette.exceptions import HTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from panel.errors import ServeError
from panel.web.connections import connections_that_fit, request_deadline_protocol
from panel.web.guards import Rejected, allowed_hosts


def security_headers(csp: str, frame_ancestors: str = "'none'") -> dict[str, str]:
    """The headers every answer of an app carries: its CSP (framed only by `frame_ancestors`), nosniff, no referrer."""
    return {
        "content-security-policy": f"{csp}; frame-ancestors {frame_ancestors}",
        "x-content-type-options": "nosniff",
        "referrer-policy": "no-referrer",
        "cache-control": "no-store",  # pages carry per-reader or per-session tokens
    }


class SecurityHeaders:
    """Adds `headers` to every response that lacks them, including the framework's own 404/405/413."""

    def __init__(self, app: ASGIApp, headers: Mapping[str, str]) -> None:
        self.app = app
        self.headers = [(name.encode(), value.encode()) for name, value in headers.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(name, value) for name, value in self.headers if name not in present]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers if scope["type"] == "http" else send)


def guarded(app: ASGIApp, hosts: Iterable[str], headers: Mapping[str, str]) -> ASGIApp:
    """`app` behind the host check (400 for a Host not allowed), all inside the security headers (its 400 too)."""
    return SecurityHeaders(TrustedHostMiddleware(app, allowed_hosts=list(hosts), www_redirect=False), headers)


async def _rejected(request: Request, error: Exception) -> Response:
    assert isinstance(error, Rejected)
    return PlainTextResponse(error.reason + "\n", status_code=error.status, headers=error.headers)


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    return PlainTextResponse(f"{error.detail}\n", status_code=error.status_code, headers=error.headers)


async def _hung_up(request: Request, error: Exception) -> Response:
    # The client left, or was cut off at its request deadline, mid-body: no error, and nobody to answer.
    return Response(status_code=408)


# Refusals and the framework's errors as one plain-text line; a hang-up mid-body as a quiet 408.
ONE_LINE_ERRORS: dict[type[Exception], Callable[..., object]] = {
    Rejected: _rejected,
    HTTPException: _http_error,
    ClientDisconnect: _hung_up,
}


class AppServer:
    """A served app's process side: binds the socket, runs uvicorn with request deadlines, stops cleanly.

    A subclass builds its ASGI app in `_open` (after the socket is bound) and frees what it holds in
    `_release`. run() serves in the foreground until Ctrl-C; `with Server(...) as server:` serves from a
    background thread (tests, bench) and stops on exit.
    """

    name = "panel"

    def __init__(
        self,
        host: str,
        port: int,
        headers: Mapping[str, str],
        allow_hosts: Iterable[str] = (),
        request_deadline_s: float = 10.0,
        max_connections: int = 10_000,
    ) -> None:
        self.host, self.port, self.headers = host, port, dict(headers)
        self.hosts = allowed_hosts(allow_hosts, bound_address=host)
        self.request_deadline_s, self.max_connections = request_deadline_s, max_connections
        self._server: uvicorn.Server | None = None
        self._socket: socket.socket | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The base URL to open, e.g. http://127.0.0.1:8000."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def _open(self) -> ASGIApp:
        """Take what the app needs (locks, the database) and build it; the socket is already bound."""
        raise NotImplementedError

    def _release(self) -> None:
        """Give back what _open took (also after a failed start)."""

    def _bind(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        # proto=IPPROTO_TCP lets asyncio set TCP_NODELAY on each connection (else 40 ms per response).
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError as error:
            sock.close()
            raise ServeError(
                f"cannot listen on {self.host}:{self.port} ({error.strerror}); pick another --port"
            ) from None
        sock.listen(2048)  # connections queue from here on, before uvicorn's loop starts
        self.port = sock.getsockname()[1]
        return sock

    def _prepare(self) -> uvicorn.Server:
        try:
            self._socket = self._bind()
            app = self._open()
        except BaseException:
            self._close()
            raise
        # proxy_headers=False: uvicorn would otherwise take X-Forwarded-For from any local client as its
        # address, and per-address limits would count whatever address a client made up.
        config = uvicorn.Config(
            app,
            lifespan="on",
            log_level="warning",
            access_log=False,
            ws="none",
            proxy_headers=False,
            http=request_deadline_protocol(self.request_deadline_s, self.headers),
            limit_concurrency=connections_that_fit(self.max_connections),
            timeout_graceful_shutdown=10,
        )
        self._server = uvicorn.Server(config)
        return self._server

    def run(self, on_ready: Callable[[], None] | None = None) -> None:
        """Serve in the foreground until interrupted (`on_ready` runs once listening); then release everything."""
        server = self._prepare()
        try:
            if on_ready is not None:
                on_ready()
            server.run(sockets=[self._socket])  # type: ignore[list-item]
        finally:
            self._close()

    def __enter__(self) -> Self:
        server = self._prepare()
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [self._socket]}, name=self.name, daemon=True
        )
        self._thread.start()
        while not server.started:
            if not self._thread.is_alive():
                self._close()
                raise ServeError(f"{self.name} could not start on {self.url}")
            threading.Event().wait(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=30)
        self._close()

    def _close(self) -> None:
        try:
            self._release()
        finally:
            if self._socket is not None:
                self._socket.close()
                self._socket = None
