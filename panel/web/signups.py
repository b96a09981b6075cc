"""The newsletter on `panel serve`: the sign-up form's post, the confirmation link and the unsubscribe link.

The same rules as votes: the Host allow-list and security headers (serve.py wraps these routes too), the Origin
check, a voter cookie this server issued and a CSRF token bound to it (an HMAC under the voter secret, for
sign-ups only), the same body limit, and a per-client-address rate limit. Whatever the address's state, a
sign-up gets the same answer, at once: the confirmation mail (double opt-in; none for an address already
confirmed) goes out from a thread of its own, so neither the words nor the timing tell what was known.
Confirm and unsubscribe links carry a random token the database knows only as a hash; a GET shows one button
(a link scanner opening the mail changes nothing), a POST acts (RFC 8058's one-click unsubscribe posts too).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import math
import re
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from urllib.parse import quote

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from panel.config import Settings
from panel.errors import MailError, PanelError
from panel.mail.addresses import new_token, normalise_address, token_hash
from panel.mail.messages import confirmation_message
from panel.mail.smtp import PermanentFailure, SmtpSender
from panel.render import SignupForm, content_security_policy
from panel.store import Store
from panel.web.guards import RateLimiter, Rejected, check_origin, client_address, parse_exact_form
from panel.web.voter_keys import VoterKeys, load_voter_secret

SIGNUP_PATH = "/newsletter"
CONFIRM_PATH = "/newsletter/confirm"
UNSUBSCRIBE_PATH = "/newsletter/unsubscribe"
_SIGNUP_FIELDS = ("email", "consent", "csrf")
_LINK_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")  # secrets.token_urlsafe(32)
SIGNUPS_PER_HOUR_PER_ADDRESS = 10


class Signups:
    """The newsletter's routes; `voter(request)` gives the reader's issued cookie token (and whether it is new)."""

    def __init__(
        self,
        store: Store,
        mail: Settings,
        site_url: str,
        hosts: tuple[str, ...],
        db: Executor,
        voter: Callable[[Request], tuple[str, bool]],
        set_cookie: Callable[[Response, str], None],
    ) -> None:
        self.store, self.site_url, self.hosts, self.db = store, site_url.rstrip("/"), hosts, db
        self.voter, self.set_cookie = voter, set_cookie
        self._secret = load_voter_secret(store.path)
        self._keys = VoterKeys(self._secret)
        self.sender = SmtpSender(mail, tries=3)
        self._mail = ThreadPoolExecutor(1, thread_name_prefix="panel-mail")
        self.confirmations_sent = 0
        self.mail_error: str | None = None  # the last confirmation that could not be sent, for the operator
        self.signups = RateLimiter(SIGNUPS_PER_HOUR_PER_ADDRESS, SIGNUPS_PER_HOUR_PER_ADDRESS / 3600)
        self.link_uses = RateLimiter(30, 0.5)
        self._page = Environment(
            loader=PackageLoader("panel", "templates"), autoescape=select_autoescape(default=True)
        ).get_template("newsletter.html.j2")

    def routes(self) -> list[Route]:
        """The routes to mount on the served app."""
        return [
            Route(SIGNUP_PATH, self.signup_page, methods=["GET"]),
            Route(SIGNUP_PATH, self.sign_up, methods=["POST"]),
            Route(CONFIRM_PATH, self.link_page, methods=["GET"]),
            Route(CONFIRM_PATH, self.confirm, methods=["POST"]),
            Route(UNSUBSCRIBE_PATH, self.link_page, methods=["GET"]),
            Route(UNSUBSCRIBE_PATH, self.unsubscribe, methods=["POST"]),
        ]

    def form(self, token: str) -> SignupForm:
        """The sign-up form for a reader's page: where it posts and the CSRF token bound to their cookie."""
        return SignupForm(action=SIGNUP_PATH, csrf=self._csrf(token))

    async def stop(self) -> None:
        """Let confirmation mails already queued go out, then close the SMTP connection."""
        await asyncio.get_running_loop().run_in_executor(None, self._mail.shutdown, True)
        self.sender.close()

    # --- handlers --------------------------------------------------------------------------------
    async def signup_page(self, request: Request) -> Response:
        """GET /newsletter: the sign-up form on a page of its own (where static pages' sign-up link points)."""
        token, new = self.voter(request)
        response = self._answer("Weekly AI Tool Verdicts", "Get the next comparison in your inbox.", 200, token)
        if new:
            self.set_cookie(response, token)
        return response

    async def sign_up(self, request: Request) -> Response:
        """POST /newsletter: record a sign-up and mail its confirmation link; the same answer for every address."""
        check_origin(request, self.hosts)
        token = request.cookies.get("panel_voter")
        if not self._keys.is_issued(token):
            raise Rejected(403, "no reader cookie from this server: open the page and sign up from it")
        assert token is not None
        form = parse_exact_form(request.headers.get("content-type"), await request.body(), _SIGNUP_FIELDS, "sign-up")
        if not self._csrf_ok(token, form["csrf"]):
            raise Rejected(403, "this sign-up form has expired: reload the page and sign up again")
        if form["consent"] != "yes":
            return self._answer("Not signed up", "Tick the consent box to get the digest.", 400, token)
        wait = self.signups.wait_s(client_address(request))
        if wait:
            raise Rejected(
                429, "too many sign-ups from your address: try again later", {"retry-after": str(math.ceil(wait))}
            )
        try:
            address = normalise_address(form["email"])
        except MailError:
            return self._answer("Not signed up", "That is not a valid email address.", 400, token)
        link_token, link_hash = new_token()
        try:
            mail = await asyncio.get_running_loop().run_in_executor(self.db, self.store.subscribe, address, link_hash)
        except PanelError:
            raise Rejected(503, "the sign-up could not be stored: try again", {"retry-after": "5"}) from None
        if mail:
            self._mail.submit(self._send_confirmation, address, link_token)
        return self._answer(
            "Check your inbox",
            "If that address can get the digest, a confirmation link is on its way. "
            "Nothing is sent before you confirm.",
            200,
        )

    async def link_page(self, request: Request) -> Response:
        """GET a confirm or unsubscribe link: one button that posts it (opening a link alone changes nothing)."""
        link = self._link_token(request)
        confirming = request.url.path == CONFIRM_PATH
        action = f"{request.url.path}?token={quote(link)}"
        title, button = ("Confirm your sign-up", "Confirm") if confirming else ("Unsubscribe", "Unsubscribe")
        return self._answer(title, "", 200, None, action=action, button=button)

    async def confirm(self, request: Request) -> Response:
        """POST a confirmation link: the address gets digests from now on."""
        if await self._use(request, self.store.confirm):
            return self._answer("Signed up", "You will get the next weekly digest.", 200)
        return self._answer("Link not valid", "This confirmation link was used, expired or never sent.", 404)

    async def unsubscribe(self, request: Request) -> Response:
        """POST an unsubscribe link (a button, or a mail client's List-Unsubscribe-Post): no more digests."""
        if await self._use(request, self.store.unsubscribe):
            return self._answer("Unsubscribed", "You will get no more digests.", 200)
        return self._answer("Link not valid", "This unsubscribe link was never sent.", 404)

    # --- pieces ----------------------------------------------------------------------------------
    async def _use(self, request: Request, use: Callable[[str], bool]) -> bool:
        check_origin(request, self.hosts)
        link = self._link_token(request)
        await request.body()  # a button's empty form, or List-Unsubscribe=One-Click: bounded by the body limit
        try:
            return await asyncio.get_running_loop().run_in_executor(self.db, use, token_hash(link))
        except PanelError:
            raise Rejected(503, "the database is busy: try the link again", {"retry-after": "5"}) from None

    def _link_token(self, request: Request) -> str:
        wait = self.link_uses.wait_s(client_address(request))
        if wait:
            raise Rejected(429, "too many requests: wait a moment", {"retry-after": str(math.ceil(wait))})
        link = request.query_params.get("token", "")
        if _LINK_TOKEN.fullmatch(link) is None:
            raise Rejected(404, "this link is not valid")
        return link

    def _send_confirmation(self, address: str, link_token: str) -> None:
        url = f"{self.site_url}{CONFIRM_PATH}?token={quote(link_token)}"
        message = confirmation_message(self.sender.settings.smtp_sender, address, url, token_hash(link_token))
        try:
            self.sender.send(message, address)
            self.confirmations_sent += 1
        except (MailError, PermanentFailure) as error:
            self.mail_error = str(error)

    def _answer(
        self, title: str, text: str, status: int, form_for: str | None = None, action: str = "", button: str = ""
    ) -> Response:
        """A newsletter page: a title, a line, and the sign-up form for reader `form_for` or a button to `action`."""
        signup = None if form_for is None else self.form(form_for)
        html = self._page.render(
            title=title, text=text, signup=signup, action=action, button=button, csp=content_security_policy("'self'")
        )
        return HTMLResponse(html, status_code=status)

    def _csrf(self, token: str) -> str:
        return hmac.new(self._secret, b"signup:" + token.encode("ascii"), hashlib.sha256).hexdigest()

    def _csrf_ok(self, token: str, csrf: str) -> bool:
        return csrf.isascii() and hmac.compare_digest(self._csrf(token), csrf)
