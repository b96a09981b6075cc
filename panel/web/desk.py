"""`panel desk`: the editor's desk, a local web app to edit, approve and publish a stored run's pairs.

Every request passes the host check (400), then the access gate (desk_access.py: the printed token, traded for
a session cookie; 403 without), and every answer carries the desk's CSP (no script; frames and forms only from
the desk itself). Posts must come from the desk's pages (Origin check) and carry the session's CSRF token;
bodies are capped (413) and each request must arrive within the deadline. Edits go through
panel/overrides.py exactly as `panel override` does, approvals and publications through panel/editorial.py;
each write takes the writer lock for that one operation, so an open desk never stops `panel review` or
`panel sql`, and a lock held elsewhere (another process, or the desk's own job) is a one-line notice on the
page. Database calls run one at a time on a thread of their own. "Ask again" and "Add a pair" run as background
jobs (desk_jobs.py); a pair's page lists each item's answer versions, and "Use this version" picks one
(panel/ask_again.py use_version) as `panel use-version` does.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import quote, unquote

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from panel.answer_kinds import PICKS
from panel.ask_again import use_version
from panel.config import Settings
from panel.editorial import approve_pair, pair_status, publish_pair, published_name
from panel.errors import PanelError, StoreError
from panel.overrides import apply_override
from panel.render import CONTENT_SECURITY_POLICY, community_so_far, neutralise, page_tally, persona_labels, render_html
from panel.store import Store
from panel.tally import PairTally, RunTally
from panel.verdict import VERDICTS
from panel.web.desk_access import AccessGate, DeskAccess, session_of
from panel.web.desk_forms import (
    CARD_FIELDS,
    EDIT_FIELDS,
    EDITOR_FIELDS,
    PAIR_ACTION_FIELDS,
    VERSION_FIELDS,
    desk_message,
    edit_request,
    edited_item,
    editor_name,
    version_number,
)
from panel.web.desk_jobs import DeskJobs
from panel.web.desk_views import item_versions, pair_history, pair_path, run_rows
from panel.web.guards import Rejected, check_origin, pair_number, parse_form
from panel.web.hosting import ONE_LINE_ERRORS, AppServer, guarded, security_headers

DESK_CSP = (
    "default-src 'none'; script-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-src 'self'; "
    "base-uri 'none'; form-action 'self'"
)
DESK_HEADERS = security_headers(DESK_CSP)
# The preview is the reader's page under its own no-script CSP, framed only by the desk.
PREVIEW_HEADERS = security_headers(CONTENT_SECURITY_POLICY, frame_ancestors="'self'")
EDITOR_COOKIE = "panel_desk_editor"
MAX_BODY_BYTES = 64 * 1024  # the longest quote (3,000 characters), percent-encoded UTF-8, with room to spare
_RUN_ID = re.compile(r"[0-9a-f]{6,64}")
_NEXT = re.compile(r"/(runs/[0-9a-f]{6,64}/pairs/[1-9][0-9]{0,8})?")
_DONE = {
    "saved": "Saved: the preview shows the change.",
    "reverted": "Reverted: the page shows the model's answer again.",
    "approved": "Approved as it is now.",
    "published": "Published: the files are written.",
    "editor": "Name saved for this browser.",
    "picked": "Version picked: the preview shows it.",
}
T = TypeVar("T")


def _neutralised(value: object) -> object:
    # Every {{ value }} of a desk page: no invisible or bidi character reaches it (markup, e.g. a macro's, as is).
    return neutralise(value) if isinstance(value, str) and not isinstance(value, Markup) else value


class DeskApp:
    """The ASGI app of `panel desk` over a Store: the runs list, a pair's edit page and preview, and the posts."""

    def __init__(self, settings: Settings, store: Store, access: DeskAccess, hosts: Iterable[str]) -> None:
        self.store, self.publish_dir, self.default_editor = store, settings.publish_dir, settings.editor
        self.access, self.hosts = access, tuple(hosts)
        self.jobs = DeskJobs(self, settings)
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="panel-desk-db")
        self._templates = Environment(
            loader=PackageLoader("panel", "templates"),
            undefined=StrictUndefined,
            autoescape=select_autoescape(default=True),
            trim_blocks=True,
            lstrip_blocks=True,
            finalize=_neutralised,
        )
        pair = "/runs/{run_id}/pairs/{number}"
        routes = [
            Route("/", self.runs, methods=["GET"]),
            Route(pair, self.pair_page, methods=["GET"]),
            Route(pair + "/preview", self.preview, methods=["GET"]),
            Route(pair + "/edit", self.edit, methods=["POST"]),
            Route(pair + "/approve", self.approve, methods=["POST"]),
            Route(pair + "/publish", self.publish, methods=["POST"]),
            Route(pair + "/version", self.pick_version, methods=["POST"]),
            Route("/editor", self.set_editor, methods=["POST"]),
            *self.jobs.routes(),
        ]
        handlers: dict[Any, Callable[..., Any]] = {**ONE_LINE_ERRORS, PanelError: self._panel_error}
        starlette = Starlette(
            routes=routes, max_body_size=MAX_BODY_BYTES, exception_handlers=handlers, lifespan=self.jobs.lifespan
        )
        self.asgi: ASGIApp = guarded(AccessGate(starlette, access), self.hosts, DESK_HEADERS)

    # --- pages -----------------------------------------------------------------------------------
    async def runs(
        self, request: Request, message: str | None = None, form: dict[str, str] | None = None, status_code: int = 200
    ) -> Response:
        """GET /: every stored editors' run, newest first, with its pairs' status, panel ship % and marks; the
        desk's latest jobs; the "Add a pair" form (holding what was typed when it comes back with an error)."""
        rows = await self.db(lambda: run_rows(self.store))
        return self.page(
            request,
            "desk_runs.html.j2",
            status_code=status_code,
            message=message,
            here="/",
            runs=rows,
            db_path=self.store.path,
            pair_path=pair_path,
            jobs=self.jobs.recent(),
            form=form or {},
            card_fields=CARD_FIELDS,
        )

    async def pair_page(self, request: Request, message: str | None = None, status_code: int = 200) -> Response:
        """GET a pair: the preview beside the edit panels, approve and publish."""
        tally, pair = await self.pair_of(request)
        approvals, publications, versions = await self.db(
            lambda: (
                self.store.approvals(tally.run.run_id),
                self.store.publications(tally.run.run_id),
                item_versions(self.store, tally.run.run_id, pair),
            )
        )
        left, right = pair.left.tool.name, pair.right.tool.name
        return self.page(
            request,
            "desk_pair.html.j2",
            status_code=status_code,
            message=message,
            here=pair_path(tally.run.run_id, pair),
            tally=tally,
            pair=pair,
            personas=persona_labels(tally),
            status=pair_status(pair, approvals, publications),
            history=pair_history(pair, approvals, publications),
            publish_name=published_name(pair, tally.run.run_id),
            publish_dir=self.publish_dir,
            verdicts=VERDICTS,
            picks=PICKS,
            pick_labels=[f"left ({left})", f"right ({right})", "both", "neither"],
            versions=versions,
        )

    async def preview(self, request: Request) -> Response:
        """GET the pair's page exactly as it would be published (the reader's no-script page)."""
        tally, pair = await self.pair_of(request)
        community = await self.db(lambda: community_so_far(self.store, tally))
        return HTMLResponse(render_html(tally, pair, community), headers=PREVIEW_HEADERS)

    # --- posts -----------------------------------------------------------------------------------
    async def edit(self, request: Request) -> Response:
        """POST an edit panel (save, revert or flip): one override, exactly as `panel override` stores it."""
        fields = await self.form(request, EDIT_FIELDS)
        tally, pair = await self.pair_of(request)
        editor = self.editor_of(request)

        def store_edit() -> None:
            apply_override(self.store, tally.run.run_id, edit_request(fields, pair, editor))

        done = "reverted" if fields.get("action") == "revert" else "saved"
        return await self.write(request, store_edit, done)

    async def approve(self, request: Request) -> Response:
        """POST: approve the pair as it is now."""
        await self.form(request, PAIR_ACTION_FIELDS)
        run_id, number = self._ids(request)
        editor = self.editor_of(request)
        return await self.write(request, lambda: approve_pair(self.store, run_id, number, editor), "approved")

    async def publish(self, request: Request) -> Response:
        """POST: publish the approved pair's HTML and Markdown to the publish folder."""
        await self.form(request, PAIR_ACTION_FIELDS)
        run_id, number = self._ids(request)
        editor = self.editor_of(request)
        return await self.write(
            request, lambda: publish_pair(self.store, run_id, number, editor, self.publish_dir), "published"
        )

    async def pick_version(self, request: Request) -> Response:
        """POST "Use this version": the page uses that answer version of the item from now on."""
        fields = await self.form(request, VERSION_FIELDS)
        tally, pair = await self.pair_of(request)
        persona, tool_id, _ = edited_item(fields, pair)
        number, editor = version_number(fields), self.editor_of(request)

        def pick() -> None:
            use_version(self.store, tally.run.run_id, persona, number, editor, tool_id, pair.index + 1)

        return await self.write(request, pick, "picked")

    async def set_editor(self, request: Request) -> Response:
        """POST /editor: remember the editor's name for this browser (a cookie), back to the page it came from."""
        fields = await self.form(request, EDITOR_FIELDS)
        back = fields.get("next", "/")
        if _NEXT.fullmatch(back) is None:
            back = "/"
        try:
            name = editor_name(fields.get("editor"))
        except PanelError as error:
            raise Rejected(400, desk_message(error)) from None
        response = RedirectResponse(f"{back}?done=editor", status_code=303)
        response.set_cookie(EDITOR_COOKIE, quote(name), max_age=365 * 24 * 3600, httponly=True, samesite="strict")
        return response

    # --- pieces ----------------------------------------------------------------------------------
    async def db(self, call: Callable[[], T]) -> T:
        """`call`'s result, run on the desk's one database thread."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, call)

    def _ids(self, request: Request) -> tuple[str, int]:
        run_id = request.path_params["run_id"]
        if _RUN_ID.fullmatch(run_id) is None:
            raise Rejected(404, "no such run")
        return run_id, pair_number(request.path_params["number"])

    async def pair_of(self, request: Request) -> tuple[RunTally, PairTally]:
        """The run and pair a request's path names; Rejected 404 for none."""
        run_id, number = self._ids(request)

        def read() -> RunTally | None:
            return page_tally(self.store, run_id) if run_id in self.store.review_runs(10_000) else None

        tally = await self.db(read)
        if tally is None or number > len(tally.pairs):
            raise Rejected(404, "no such pair")
        return tally, tally.pairs[number - 1]

    async def form(self, request: Request, allowed: frozenset[str]) -> dict[str, str]:
        """A post's fields, once its Origin and CSRF token passed; Rejected 403/400/415 otherwise."""
        check_origin(request, self.hosts, what="edits")
        fields = parse_form(request.headers.get("content-type"), await request.body(), allowed)
        if not self.access.csrf_ok(session_of(request), fields.get("csrf", "")):
            raise Rejected(403, "this form has expired: reload the page and try again")
        return fields

    def editor_of(self, request: Request) -> str:
        """The editor of a post: the name saved in this browser, else the configured one; Rejected 400 without."""
        saved = request.cookies.get(EDITOR_COOKIE)
        try:
            return editor_name(unquote(saved) if saved else self.default_editor)
        except PanelError as error:
            raise Rejected(400, desk_message(error)) from None

    async def write(self, request: Request, write: Callable[[], object], done: str) -> Response:
        """Run one write; 303 back to the pair, or the pair page with the one-line reason (409 for a busy lock)."""
        try:
            await self.db(write)
        except PanelError as error:
            return await self.pair_page(request, desk_message(error), 409 if isinstance(error, StoreError) else 400)
        return RedirectResponse(request.url.path.rsplit("/", 1)[0] + f"?done={done}", status_code=303)

    def page(self, request: Request, template: str, status_code: int = 200, **context: Any) -> Response:
        """A desk page from `template`, with the session's CSRF token, the editor's name and any done-notice."""
        saved = request.cookies.get(EDITOR_COOKIE)
        context.setdefault("message", None)
        context.setdefault("here", request.url.path)
        html = self._templates.get_template(template).render(
            csrf=self.access.csrf_token(session_of(request)),
            editor=unquote(saved) if saved else self.default_editor,
            done=_DONE.get(request.query_params.get("done", "")),
            **context,
        )
        return HTMLResponse(html, status_code=status_code)

    async def _panel_error(self, request: Request, error: Exception) -> Response:
        # A database another process holds past the wait, or a damaged one: one line, never a traceback.
        assert isinstance(error, PanelError)
        return Response(desk_message(error) + "\n", status_code=503, media_type="text/plain")


class DeskServer(AppServer):
    """`panel desk` as an object over Settings: the desk on a loopback port by default, holding no lock between
    requests (its jobs hold it while they run)."""

    name = "panel desk"

    def __init__(
        self,
        settings: Settings,
        host: str = "127.0.0.1",
        port: int = 0,
        allow_hosts: Iterable[str] = (),
        access: DeskAccess | None = None,
    ) -> None:
        super().__init__(host, port, DESK_HEADERS, allow_hosts)
        # The settings' database, publish folder and editor; their endpoint, model and paths for the desk's jobs.
        self.settings, self.store, self.publish_dir = settings, Store(settings.db_path), settings.publish_dir
        self.access = access or DeskAccess()
        self.app: DeskApp | None = None

    @property
    def tokened_url(self) -> str:
        """The one URL to open: the desk's address with its access token."""
        return f"{self.url}/?token={self.access.token}"

    def _open(self) -> ASGIApp:
        self.store.check_writable()  # edits must be storable: a damaged database is refused before the first page
        self.app = DeskApp(self.settings, self.store, self.access, self.hosts)
        return self.app.asgi

    def _release(self) -> None:
        if self.app is not None:
            self.app.executor.shutdown(wait=True)
