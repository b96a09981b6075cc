"""`panel serve`: the comparison pages over HTTP on 127.0.0.1, where readers vote ship or skip on each tool.

Every request is untrusted: a Host outside the allow-list is answered 400 before routing (no DNS
rebinding, no redirect to a foreign host); only a stored pair's two tool ids and the two verdicts are
accepted; a vote needs a voter cookie this server issued and signed, and the CSRF token bound to it;
bodies are capped; new cookies are rate limited per client address, and votes per reader and per client
address; every response, the framework's own 400/404/405/413/500 and uvicorn's own 400/503 included,
carries the page's Content-Security-Policy (no scripts; forms post only to this server). Votes go through
community.VoteWriter, the database's single writer while serving: a vote is answered once it is durable in
the journal beside the database, which folds into DuckDB behind.
"""

from __future__ import annotations

import contextlib
import math
import re
import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import uvicorn
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from panel.community import CommunityVotes, VoteForms
from panel.config import Settings
from panel.errors import PanelError, ServeError
from panel.render import content_security_policy
from panel.store import Store, VoteTarget
from panel.verdict import VERDICTS
from panel.web.connections import connections_that_fit, request_deadline_protocol
from panel.web.guards import (
    LOOPBACK_HOSTS,
    RateLimiter,
    Rejected,
    allowed_hosts,
    check_origin,
    client_address,
    parse_vote_form,
)
from panel.web.page_cache import PageCache
from panel.web.signups import Signups
from panel.web.vote_writer import VoteQueueFull, VoteWriter
from panel.web.voter_keys import VoterKeys, load_voter_secret

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
_PAIR_NUMBER = re.compile(r"[1-9][0-9]{0,8}")  # 1-based; longer is no stored pair (and int() of it is costly)


@dataclass(frozen=True)
class ServeLimits:
    """What readers may send: votes per reader and per client address, new cookies per address, body size, time.

    Each rate is a token bucket that starts full, so in any minute one client address gets at most
    2 x new_readers_per_minute cookies and casts at most 2 x votes_per_minute_per_address votes.
    A connection must deliver each whole request (headers and body) within `request_deadline_s` of the server
    starting to wait for it, and is closed after 5 s idle; past `max_connections` open at once, requests get 503.
    """

    burst: int = 10
    votes_per_second: float = 1.0
    new_readers_per_minute: int = 10
    votes_per_minute_per_address: int = 60
    max_body_bytes: int = 1024
    max_connections: int = 10_000
    request_deadline_s: float = 10.0


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


class CommunityApp:
    """The ASGI app of `panel serve`: pages, vote forms, tallies; built over an open Store."""

    def __init__(
        self,
        store: Store,
        limits: ServeLimits = ServeLimits(),
        hosts: tuple[str, ...] = LOOPBACK_HOSTS,
        mail: Settings = Settings(),
        site_url: str = "http://127.0.0.1",
    ) -> None:
        self.store, self.limits, self.hosts = store, limits, hosts
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="panel-db")  # every DB call, one at a time
        self.targets = {(t.run_id, t.pair_index): t for t in store.vote_targets()}
        self.votes = CommunityVotes(store.current_votes())
        self.keys = VoterKeys(load_voter_secret(store.path))
        self.reader_votes = RateLimiter(limits.burst, limits.votes_per_second)
        per_minute = limits.votes_per_minute_per_address
        self.address_votes = RateLimiter(per_minute, per_minute / 60)
        self.new_readers = RateLimiter(limits.new_readers_per_minute, limits.new_readers_per_minute / 60)
        self.writer = VoteWriter(store, self.votes, self.executor)
        self.pages = PageCache(store, self.executor, SERVED_FORM_ACTION)
        self.signups = Signups(store, mail, site_url, hosts, self.executor, self._voter, self._set_cookie)
        self._index = Environment(
            loader=PackageLoader("panel", "templates"), autoescape=select_autoescape(default=True)
        ).get_template("index.html.j2")
        routes = [
            Route("/", self.index, methods=["GET"]),
            # {number} is parsed by _target: Starlette's int convertor turns 5,000 digits into a 500.
            Route("/runs/{run_id}/pairs/{number}", self.page, methods=["GET"]),
            Route("/runs/{run_id}/pairs/{number}/votes", self.tallies, methods=["GET"]),
            Route("/runs/{run_id}/pairs/{number}/votes", self.vote, methods=["POST"]),
            *self.signups.routes(),
        ]
        starlette = Starlette(
            routes=routes,
            lifespan=self._lifespan,
            max_body_size=limits.max_body_bytes,
            exception_handlers={Rejected: self._rejected, HTTPException: self._http_error},
        )
        # The host check runs before routing (so a trailing-slash redirect only ever names an allowed host),
        # and inside the security headers, so its 400 carries them too.
        starlette.add_exception_handler(ClientDisconnect, self._hung_up)
        self.asgi: ASGIApp = _SecurityHeaders(
            TrustedHostMiddleware(starlette, allowed_hosts=list(hosts), www_redirect=False)
        )

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        self.writer.start()
        try:
            yield
        finally:
            await self.pages.stop()
            await self.signups.stop()
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
        token: str | None
        try:
            token, new = self._voter(request)
        except Rejected:  # past its address's new-cookie limit a reader still reads, without the vote forms
            token, new = None, False
        page = await self.pages.page(target.run_id, target.pair_index)
        tool_ids = (target.left_tool_id, target.right_tool_id)
        community = {tool_id: self.votes.tally(target.run_id, tool_id) for tool_id in tool_ids}
        voting = None if token is None else self._vote_forms(target, token)
        signup = None if token is None else self.signups.form(token)
        response = HTMLResponse(page.html(community, voting, signup))
        if token is not None and new:
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
        check_origin(request, self.hosts)
        token = request.cookies.get(VOTER_COOKIE)
        if token is None:
            raise Rejected(403, "no voter cookie: open the page and vote from it")
        if not self.keys.is_issued(token):
            raise Rejected(403, "this voter cookie was not issued by this server: reload the page and vote again")
        form = parse_vote_form(request.headers.get("content-type"), await request.body())
        if not self.keys.csrf_ok(token, form["csrf"]):
            raise Rejected(403, "this vote form has expired: reload the page and vote again")
        if form["tool"] not in (target.left_tool_id, target.right_tool_id):
            raise Rejected(400, "unknown tool for this pair")
        if form["verdict"] not in VERDICTS:
            raise Rejected(400, "a verdict is ship or skip")
        # Per reader, then per client address: a client that discards its cookie still shares its address's bucket.
        wait = self.reader_votes.wait_s(token) or self.address_votes.wait_s(client_address(request))
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
        target = None
        if _PAIR_NUMBER.fullmatch(number):
            target = self.targets.get((request.path_params["run_id"], int(number) - 1))
        if target is None:
            raise Rejected(404, "no such pair")
        return target

    def _vote_forms(self, target: VoteTarget, token: str) -> VoteForms:
        voter = VoterKeys.voter_id(token)
        mine = {
            tool_id: verdict
            for tool_id in (target.left_tool_id, target.right_tool_id)
            if (verdict := self.votes.vote_of(target.run_id, tool_id, voter)) is not None
        }
        return VoteForms(action=page_path(target) + "/votes", csrf=self.keys.csrf_token(token), mine=mine)

    def _voter(self, request: Request) -> tuple[str, bool]:
        """The reader's issued token and False, or a new one and True (to set); Rejected 429 past its limit."""
        token = request.cookies.get(VOTER_COOKIE)
        if token is not None and self.keys.is_issued(token):
            return token, False
        wait = self.new_readers.wait_s(client_address(request))
        if wait:
            raise Rejected(
                429,
                "too many new readers from your address: try again in a minute",
                {"retry-after": str(math.ceil(wait))},
            )
        return self.keys.issue(), True

    @staticmethod
    def _set_cookie(response: Response, token: str) -> None:
        response.set_cookie(VOTER_COOKIE, token, max_age=VOTER_COOKIE_MAX_AGE_S, httponly=True, samesite="strict")

    def _tallies_json(self, target: VoteTarget, token: str) -> dict[str, Any]:
        voter = VoterKeys.voter_id(token)
        tools = []
        for tool_id, name in ((target.left_tool_id, target.left_name), (target.right_tool_id, target.right_name)):
            tally = self.votes.tally(target.run_id, tool_id)
            tools.append(
                {
                    "tool_id": tool_id,
                    "name": name,
                    "ship": tally.ship,
                    "skip": tally.skip,
                    "votes": tally.votes,
                    "ship_percent": tally.ship_percent,
                    "your_vote": self.votes.vote_of(target.run_id, tool_id, voter),
                }
            )
        return {
            "run_id": target.run_id,
            "pair": target.pair_index + 1,
            "csrf": self.keys.csrf_token(token),
            "tools": tools,
        }

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

    def __init__(
        self,
        store: Store,
        host: str = "127.0.0.1",
        port: int = 0,
        limits: ServeLimits = ServeLimits(),
        allow_hosts: Iterable[str] = (),
        mail: Settings = Settings(),
    ) -> None:
        self.store, self.host, self.port, self.limits, self.mail = store, host, port, limits, mail
        self.hosts = allowed_hosts(allow_hosts, bound_address=host)
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
            self.store.check_writable()  # votes must be storable before a reader can cast one
            self.store.fold_journal()  # a review's answers still in the journal belong on the pages served
            family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
            # proto=IPPROTO_TCP lets asyncio set TCP_NODELAY on each connection (else 40 ms per response).
            self._socket = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
            self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                self._socket.bind((self.host, self.port))
            except OSError as error:
                raise ServeError(
                    f"cannot listen on {self.host}:{self.port} ({error.strerror}); pick another --port"
                ) from None
            self._socket.listen(2048)  # connections queue from here on, before uvicorn's loop starts
            self.port = self._socket.getsockname()[1]
            self.app = CommunityApp(self.store, self.limits, self.hosts, self.mail, self.mail.site_url or self.url)
        except BaseException:
            self._close()
            raise
        # proxy_headers=False: uvicorn would otherwise take X-Forwarded-For from any local client as its
        # address, and the per-address limits would count whatever address a client made up.
        config = uvicorn.Config(
            self.app.asgi,
            lifespan="on",
            log_level="warning",
            access_log=False,
            ws="none",
            proxy_headers=False,
            http=request_deadline_protocol(self.limits.request_deadline_s, SECURITY_HEADERS),
            limit_concurrency=connections_that_fit(self.limits.max_connections),
            timeout_graceful_shutdown=10,
        )
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
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [self._socket]}, name="panel-serve", daemon=True
        )
        self._thread.start()
        while not server.started:
            if not self._thread.is_alive():
                self._close()
                raise ServeError(f"panel serve could not start on {self.url}")
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
