"""Who may use `panel desk`: the access token it prints, the session cookie it is traded for, and CSRF tokens.

Like Jupyter's: the desk prints one URL carrying a random token (`/?token=...`). The first visit trades it for
an HttpOnly, SameSite=Strict session cookie and is redirected to the same URL without the token (so it stays
out of the history and of any address bar someone reads over a shoulder). Every other request needs that
cookie: without it, or with a wrong token, the answer is 403. Sessions are signed with a secret made when the
desk starts, so a restarted desk (with a new token) invalidates every old cookie. Every form carries a CSRF
token bound to the session. All comparisons are constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from urllib.parse import parse_qsl, urlencode

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse
from starlette.types import ASGIApp, Receive, Scope, Send

SESSION_COOKIE = "panel_desk"
_SESSION = re.compile(r"[A-Za-z0-9_-]{22}\.[0-9a-f]{64}")


class DeskAccess:
    """The desk's access token and the sessions and CSRF tokens derived from it (a fresh secret per desk)."""

    def __init__(self, token: str | None = None) -> None:
        self.token = token or secrets.token_urlsafe(32)
        self._secret = secrets.token_bytes(32)

    def token_ok(self, given: str) -> bool:
        """True when `given` is the desk's access token."""
        return given.isascii() and hmac.compare_digest(given.encode("ascii"), self.token.encode("ascii"))

    def new_session(self) -> str:
        """A session cookie value: a random id and its signature."""
        session_id = secrets.token_urlsafe(16)
        return f"{session_id}.{self._sign('session:' + session_id)}"

    def session_ok(self, value: str | None) -> bool:
        """True only for a session this desk issued."""
        if value is None or _SESSION.fullmatch(value) is None:
            return False
        session_id, signature = value.split(".")
        return hmac.compare_digest(self._sign("session:" + session_id), signature)

    def csrf_token(self, session: str) -> str:
        """The token every form of this session carries."""
        return self._sign("csrf:" + session)

    def csrf_ok(self, session: str, given: str) -> bool:
        """True when `given` is this session's CSRF token."""
        return given.isascii() and hmac.compare_digest(self.csrf_token(session), given)

    def _sign(self, text: str) -> str:
        return hmac.new(self._secret, text.encode("ascii"), hashlib.sha256).hexdigest()


def session_of(request: Request) -> str:
    """The request's session cookie, already checked by AccessGate."""
    return str(request.cookies.get(SESSION_COOKIE, ""))


class AccessGate:
    """ASGI middleware: trades a valid ?token= for a session cookie (303 to the URL without it); 403 otherwise."""

    def __init__(self, app: ASGIApp, access: DeskAccess) -> None:
        self.app, self.access = app, access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        query = parse_qsl(request.url.query, keep_blank_values=True)
        given = [value for name, value in query if name == "token"]
        if given:
            if len(given) != 1 or not self.access.token_ok(given[0]):
                await _refuse(scope, receive, send, "wrong access token: open the URL `panel desk` printed")
                return
            rest = urlencode([(name, value) for name, value in query if name != "token"])
            response = RedirectResponse(request.url.path + (f"?{rest}" if rest else ""), status_code=303)
            response.set_cookie(SESSION_COOKIE, self.access.new_session(), httponly=True, samesite="strict")
            await response(scope, receive, send)
            return
        if not self.access.session_ok(request.cookies.get(SESSION_COOKIE)):
            await _refuse(scope, receive, send, "no desk session: open the URL `panel desk` printed (with its ?token=)")
            return
        await self.app(scope, receive, send)


async def _refuse(scope: Scope, receive: Receive, send: Send, reason: str) -> None:
    await PlainTextResponse(reason + "\n", status_code=403)(scope, receive, send)
