"""`panel serve`: the comparison pages over HTTP on 127.0.0.1, where readers vote ship or skip on each tool.

Every request is untrusted: only a stored pair's two tool ids and the two verdicts are accepted, a vote
needs the reader's cookie and the CSRF token issued for it, bodies are capped, each voter is rate
limited, and every response carries the page's Content-Security-Policy (no scripts; forms post only
to this server). Votes go through community.VoteWriter, the database's single writer while serving.
"""

from __future__ import annotations

import contextlib
import math
import socket
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import uvicorn
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from panel.community import (VERDICTS, CommunityVotes, RateLimiter, VoteForms, VoterKeys, VoteQueueFull,
                             VoteWriter)
from panel.errors import PanelError
from panel.page_cache import PageCache
from panel.render import content_security_policy
from panel.serve_connections import connections_that_fit, request_deadline_protocol
from panel.store import Store, VoteTarget

VOTER_COOKIE = "panel_voter"
VOTER_COOKIE_MAX_AGE_S = 365 * 24 * 3600
SERVED_FORM_ACTION = "'self'"  # vote forms post back to this server; static pages keep form-action 'none'
SERVED_CSP = content_security_policy(SERVED_FORM_ACTION)
SECURITY_HEADERS = {
    "content-security-policy": SERVED_CSP + "; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",  # pages carry a per-reader CSRF token
}
_VOTE_FIELDS = {"tool", "verdict", "csrf"}


@dataclass(frozen=True)
class ServeLimits:
    """What one reader may send: votes per voter (a token bucket), the largest body, how long a request may take.

    A connection must deliver each whole request (headers and body) within `request_deadline_s` of the server
    starting to wait for it, and is closed after 5 s idle; past `max_connections` open at once, requests get 503.
    """

    burst: int = 10
    votes_per_second: float = 1.0
    max_body_bytes: int = 1024
    max_connections: int = 10_000
    request_deadline_s: float = 10.0


class Rejected(Exception):
    """A request refused with an HTTP status and a one-line reason for the reader."""

    def __init__(self, status: int, reason: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(reason)
        self.status, self.reason, self.headers = status, reason, headers or {}


class _SecurityHeaders:
    """Adds the security headers to every response, including the framework's own 404/405/413."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items() if k.encode() not in present]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers if scope["type"] == "http" else send)


def parse_vote_form(content_type: str | None, body: bytes) -> dict[str, str]:
    """The tool, verdict and csrf fields of a urlencoded vote form; Rejected (400/415) for anything else."""
    if (content_type or "").split(";")[0].strip().lower() != "application/x-www-form-urlencoded":
        raise Rejected(415, "a vote must be a form post (application/x-www-form-urlencoded)")
    try:
        fields = parse_qs(body.decode("ascii"), keep_blank_values=True, strict_parsing=True,
                          max_num_fields=len(_VOTE_FIELDS))
    except (UnicodeDecodeError, ValueError):
        raise Rejected(400, "malformed vote form") from None
    if set(fields) != _VOTE_FIELDS or any(len(values) != 1 for values in fields.values()):
        raise Rejected(400, "a vote form has exactly the fields tool, verdict and csrf")
    return {name: values[0] for name, values in fields.items()}


class CommunityApp:
    """The ASGI app of `panel serve`: pages, vote forms, tallies; built over an open Store."""

    def __init__(self, store: Store, limits: ServeLimits = ServeLimits()) -> None:
        self.store, self.limits = store, limits
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="panel-db")  # every DB call, one at a time
        self.targets = {(t.run_id, t.pair_index): t for t in store.vote_targets()}
        self.votes = CommunityVotes(store.current_votes())
        self.keys = VoterKeys()
        self.limiter = RateLimiter(limits.burst, limits.votes_per_second)
        self.writer = VoteWriter(store, self.votes, self.executor)
        self.pages = PageCache(store, self.executor, SERVED_FORM_ACTION)
        self._index = Environment(loader=PackageLoader("panel", "templates"),
                                  autoescape=select_autoescape(default=True)).get_template("index.html.j2")
        routes = [
            Route("/", self.index, methods=["GET"]),
            Route("/runs/{run_id}/pairs/{number:int}", self.page, methods=["GET"]),
            Route("/runs/{run_id}/pairs/{number:int}/votes", self.tallies, methods=["GET"]),
            Route("/runs/{run_id}/pairs/{number:int}/votes", self.vote, methods=["POST"]),
        ]
        starlette = Starlette(routes=routes, lifespan=self._lifespan, max_body_size=limits.max_body_bytes,
                              exception_handlers={Rejected: self._rejected, HTTPException: self._http_error})
        starlette.add_exception_handler(ClientDisconnect, self._hung_up)
        self.asgi: ASGIApp = _SecurityHeaders(starlette)

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        self.writer.start()
        self.pages.start()
        try:
            yield
        finally:
            await self.pages.stop()
            await self.writer.stop()  # every vote already queued commits before the server exits

    # --- handlers --------------------------------------------------------------------------------
    async def index(self, request: Request) -> Response:
        """GET /: links to every stored pair's page."""
        runs: dict[str, list[VoteTarget]] = {}
        for target in self.targets.values():
            runs.setdefault(target.run_id, []).append(target)
        return HTMLResponse(self._index.render(runs=runs, csp=SERVED_CSP, page_path=page_path))

    async def page(self, request: Request) -> Response:
        """GET a pair's page with its community figures and, for this reader, the vote forms."""
        target = self._target(request)
        token, new = self._voter(request)
        page = await self.pages.page(target.run_id, target.pair_index)
        voter = VoterKeys.voter_id(token)
        tool_ids = (target.left_tool_id, target.right_tool_id)
        community = {tool_id: self.votes.tally(target.run_id, tool_id) for tool_id in tool_ids}
        mine = {tool_id: verdict for tool_id in tool_ids
                if (verdict := self.votes.vote_of(target.run_id, tool_id, voter)) is not None}
        voting = VoteForms(action=page_path(target) + "/votes", csrf=self.keys.csrf_token(token), mine=mine)
        response = HTMLResponse(page.html(community, voting))
        if new:
            self._set_cookie(response, token)
        return response

    async def tallies(self, request: Request) -> Response:
        """GET a pair's community tallies as JSON, with a CSRF token for this reader (the vote API)."""
        target = self._target(request)
        token, new = self._voter(request)
        response = JSONResponse(self._tallies_json(target, token))
        if new:
            self._set_cookie(response, token)
        return response

    async def vote(self, request: Request) -> Response:
        """POST a vote: 303 back to the page (a form), or the new tallies (Accept: application/json)."""
        target = self._target(request)
        self._check_origin(request)
        token = request.cookies.get(VOTER_COOKIE)
        if not VoterKeys.is_token(token):
            raise Rejected(403, "no voter cookie: open the page and vote from it")
        assert token is not None
        form = parse_vote_form(request.headers.get("content-type"), await request.body())
        if not self.keys.csrf_ok(token, form["csrf"]):
            raise Rejected(403, "this vote form has expired: reload the page and vote again")
        if form["tool"] not in (target.left_tool_id, target.right_tool_id):
            raise Rejected(400, "unknown tool for this pair")
        if form["verdict"] not in VERDICTS:
            raise Rejected(400, "a verdict is ship or skip")
        wait = self.limiter.wait_s(token)
        if wait:
            raise Rejected(429, "too many votes: wait a moment", {"retry-after": str(math.ceil(wait))})
        try:
            await self.writer.submit(target.run_id, form["tool"], VoterKeys.voter_id(token), form["verdict"])
        except VoteQueueFull:
            raise Rejected(503, "too many votes at once: try again", {"retry-after": "1"}) from None
        except PanelError:
            raise Rejected(503, "the vote could not be stored: try again", {"retry-after": "1"}) from None
        if "application/json" in request.headers.get("accept", ""):
            return JSONResponse(self._tallies_json(target, token))
        return RedirectResponse(page_path(target), status_code=303)

    # --- pieces ----------------------------------------------------------------------------------
    def _target(self, request: Request) -> VoteTarget:
        number = request.path_params["number"]
        target = self.targets.get((request.path_params["run_id"], number - 1))
        if target is None:
            raise Rejected(404, "no such pair")
        return target

    def _voter(self, request: Request) -> tuple[str, bool]:
        token = request.cookies.get(VOTER_COOKIE)
        if token is not None and VoterKeys.is_token(token):
            return token, False
        return VoterKeys.new_token(), True

    @staticmethod
    def _set_cookie(response: Response, token: str) -> None:
        response.set_cookie(VOTER_COOKIE, token, max_age=VOTER_COOKIE_MAX_AGE_S, httponly=True, samesite="strict")

    @staticmethod
    def _check_origin(request: Request) -> None:
        # The CSRF token is the guard; a foreign Origin is refused as well, before the body is read. The page's
        # no-referrer policy makes browsers send "Origin: null" for its own forms, which therefore says nothing.
        origin = request.headers.get("origin", "null")
        if origin != "null" and origin != f"{request.url.scheme}://{request.headers.get('host', '')}":
            raise Rejected(403, "votes are accepted only from this server's pages")
        if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
            raise Rejected(403, "votes are accepted only from this server's pages")

    def _tallies_json(self, target: VoteTarget, token: str) -> dict[str, Any]:
        voter = VoterKeys.voter_id(token)
        tools = []
        for tool_id, name in ((target.left_tool_id, target.left_name), (target.right_tool_id, target.right_name)):
            tally = self.votes.tally(target.run_id, tool_id)
            tools.append({"tool_id": tool_id, "name": name, "ship": tally.ship, "skip": tally.skip,
                          "votes": tally.votes, "ship_percent": tally.ship_percent,
                          "your_vote": self.votes.vote_of(target.run_id, tool_id, voter)})
        return {"run_id": target.run_id, "pair": target.pair_index + 1, "csrf": self.keys.csrf_token(token),
                "tools": tools}

    async def _rejected(self, request: Request, error: Exception) -> Response:
        assert isinstance(error, Rejected)
        return PlainTextResponse(error.reason + "\n", status_code=error.status, headers=error.headers)

    async def _http_error(self, request: Request, error: Exception) -> Response:
        assert isinstance(error, HTTPException)
        return PlainTextResponse(f"{error.detail}\n", status_code=error.status_code, headers=error.headers)

    @staticmethod
    async def _hung_up(request: Request, error: Exception) -> Response:
        # The client left, or was cut off at its request deadline, mid-body: no error, and nobody to answer.
        return Response(status_code=408)


def page_path(target: VoteTarget) -> str:
    """The served URL path of a pair's page, e.g. /runs/3f2a9c1b0d4e/pairs/1."""
    return f"/runs/{target.run_id}/pairs/{target.pair_index + 1}"


class VoteServer:
    """`panel serve` as an object: holds the writer lock, binds a loopback port, runs uvicorn.

    run() serves in the foreground until Ctrl-C; `with VoteServer(...) as server:` serves from a
    background thread (tests, bench) and stops, committing every queued vote, on exit.
    """

    def __init__(self, store: Store, host: str = "127.0.0.1", port: int = 0,
                 limits: ServeLimits = ServeLimits()) -> None:
        self.store, self.host, self.port, self.limits = store, host, port, limits
        self.app: CommunityApp | None = None
        self._server: uvicorn.Server | None = None
        self._socket: socket.socket | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The base URL readers open, e.g. http://127.0.0.1:8000."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def _prepare(self) -> uvicorn.Server:
        self.store.acquire_writer()
        try:
            family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
            # proto=IPPROTO_TCP lets asyncio set TCP_NODELAY on each connection (else 40 ms per response).
            self._socket = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
            self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                self._socket.bind((self.host, self.port))
            except OSError as error:
                raise PanelError(f"cannot listen on {self.host}:{self.port} ({error.strerror}); "
                                 "pick another --port") from None
            self._socket.listen(2048)  # connections queue from here on, before uvicorn's loop starts
            self.port = self._socket.getsockname()[1]
            self.app = CommunityApp(self.store, self.limits)
        except BaseException:
            self._close()
            raise
        config = uvicorn.Config(self.app.asgi, lifespan="on", log_level="warning", access_log=False, ws="none",
                                http=request_deadline_protocol(self.limits.request_deadline_s),
                                limit_concurrency=connections_that_fit(self.limits.max_connections),
                                timeout_graceful_shutdown=10)
        self._server = uvicorn.Server(config)
        return self._server

    def run(self, on_ready: Callable[[], None] | None = None) -> None:
        """Serve in the foreground until interrupted (`on_ready` runs once listening); then release the lock."""
        server = self._prepare()
        try:
            if on_ready is not None:
                on_ready()
            server.run(sockets=[self._socket])  # type: ignore[list-item]
        finally:
            self._close()

    def __enter__(self) -> "VoteServer":
        server = self._prepare()
        self._thread = threading.Thread(target=server.run, kwargs={"sockets": [self._socket]},
                                        name="panel-serve", daemon=True)
        self._thread.start()
        while not server.started:
            if not self._thread.is_alive():
                self._close()
                raise PanelError(f"panel serve could not start on {self.url}")
            threading.Event().wait(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=30)
        self._close()

    def _close(self) -> None:
        if self.app is not None:
            self.app.executor.shutdown(wait=True)
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        self.store.release_writer()
