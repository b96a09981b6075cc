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
from collections.abc import AsyncIterator, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from panel.community import CommunityVotes, VoteForms
from panel.config import Settings
from panel.errors import PanelError
from panel.render import content_security_policy
from panel.store import Store, VoteTarget
from panel.verdict import VERDICTS
from panel.web.guards import (
    LOOPBACK_HOSTS,
    RateLimiter,
    Rejected,
    check_origin,
    client_address,
    pair_number,
    parse_vote_form,
)
from panel.web.hosting import ONE_LINE_ERRORS, AppServer, guarded, security_headers
from panel.web.page_cache import PageCache
from panel.web.signups import Signups
from panel.web.vote_writer import VoteQueueFull, VoteWriter
from panel.web.voter_keys import VoterKeys, load_voter_secret

VOTER_COOKIE = "panel_voter"
VOTER_COOKIE_MAX_AGE_S = 365 * 24 * 3600
SERVED_FORM_ACTION = "'self'"  # vote forms post back to this server; static pages keep form-action 'none'
SERVED_CSP = content_security_policy(SERVED_FORM_ACTION)
SECURITY_HEADERS = security_headers(SERVED_CSP)


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
            exception_handlers=ONE_LINE_ERRORS,  # type: ignore[arg-type]
        )
        # The host check runs before routing (so a trailing-slash redirect only ever names an allowed host).
        self.asgi: ASGIApp = guarded(starlette, hosts, SECURITY_HEADERS)

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
        number = pair_number(request.path_params["number"])
        target = self.targets.get((request.path_params["run_id"], number - 1))
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


def page_path(target: VoteTarget) -> str:
    """The served URL path of a pair's page, e.g. /runs/3f2a9c1b0d4e/pairs/1."""
    return f"/runs/{target.run_id}/pairs/{target.pair_index + 1}"


class VoteServer(AppServer):
    """`panel serve` as an object: holds the writer lock while it serves, on a loopback port by default.

    run() serves in the foreground until Ctrl-C; `with VoteServer(...) as server:` serves from a
    background thread (tests, bench) and stops, committing every queued vote, on exit.
    """

    name = "panel serve"

    def __init__(
        self,
        store: Store,
        host: str = "127.0.0.1",
        port: int = 0,
        limits: ServeLimits = ServeLimits(),
        allow_hosts: Iterable[str] = (),
        mail: Settings = Settings(),
    ) -> None:
        super().__init__(host, port, SECURITY_HEADERS, allow_hosts, limits.request_deadline_s, limits.max_connections)
        self.store, self.limits, self.mail = store, limits, mail
        self.app: CommunityApp | None = None

    def _open(self) -> ASGIApp:
        self.store.acquire_writer()
        self.store.check_writable()  # votes must be storable before a reader can cast one
        self.store.fold_journal()  # a review's answers still in the journal belong on the pages served
        self.app = CommunityApp(self.store, self.limits, self.hosts, self.mail, self.mail.site_url or self.url)
        return self.app.asgi

    def _release(self) -> None:
        if self.app is not None:
            self.app.executor.shutdown(wait=True)
        self.store.release_writer()
