"""What the served apps (`panel serve`, `panel desk`) check on a request before a handler acts on it, and how
they refuse one.

The Host header against the allow-list (the loopback names, the bound address, --allow-host), the
Origin of a post, the client address that per-address limits count, and a form's fields. A
refusal is Rejected: an HTTP status and a one-line reason that never echoes what the client sent.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable
from urllib.parse import parse_qs, urlsplit

from starlette.requests import Request

from panel.errors import ConfigError

_VOTE_FIELDS = ("tool", "verdict", "csrf")
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")  # the Host names answered by default, with any port
_PAIR_NUMBER = re.compile(r"[1-9][0-9]{0,8}")  # 1-based; longer is no stored pair (and int() of it is costly)
_HOST_NAME = re.compile(r"(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*|\[[0-9a-f:.]+\]")


class Rejected(Exception):
    """A request refused with an HTTP status and a one-line reason for the reader."""

    def __init__(self, status: int, reason: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(reason)
        self.status, self.reason, self.headers = status, reason, headers or {}


def parse_form(content_type: str | None, body: bytes, allowed: Collection[str], what: str = "form") -> dict[str, str]:
    """A urlencoded form's fields (a `what`: vote, sign-up, desk form), each at most once and all in `allowed`;
    Rejected (400/415) for anything else."""
    if (content_type or "").split(";")[0].strip().lower() != "application/x-www-form-urlencoded":
        raise Rejected(415, f"a {what} must be a form post (application/x-www-form-urlencoded)")
    try:
        fields = parse_qs(
            body.decode("ascii"),
            keep_blank_values=True,
            strict_parsing=bool(body),
            max_num_fields=len(allowed),
            errors="strict",
        )
    except (UnicodeDecodeError, ValueError):
        raise Rejected(400, f"malformed {what}") from None
    if not set(fields) <= set(allowed) or any(len(values) != 1 for values in fields.values()):
        raise Rejected(400, f"a {what} has only the fields {', '.join(sorted(allowed))}, each once")
    return {name: values[0] for name, values in fields.items()}


def parse_exact_form(content_type: str | None, body: bytes, names: tuple[str, ...], what: str) -> dict[str, str]:
    """Exactly the fields `names` of a urlencoded form (a `what`: vote, sign-up); Rejected (400/415) otherwise."""
    fields = parse_form(content_type, body, names, what)
    if set(fields) != set(names):
        raise Rejected(400, f"a {what} form has exactly the fields {', '.join(names[:-1])} and {names[-1]}")
    return fields


def parse_vote_form(content_type: str | None, body: bytes) -> dict[str, str]:
    """The tool, verdict and csrf fields of a urlencoded vote form; Rejected (400/415) for anything else."""
    return parse_exact_form(content_type, body, _VOTE_FIELDS, "vote")


def pair_number(text: str) -> int:
    """A URL's 1-based pair number; Rejected 404 for anything else (Starlette's int convertor 500s on 5,000 digits)."""
    if _PAIR_NUMBER.fullmatch(text) is None:
        raise Rejected(404, "no such pair")
    return int(text)


def allowed_hosts(extra: Iterable[str] = (), bound_address: str = "") -> tuple[str, ...]:
    """The Host names the server answers (any port): the loopback names, the address it is bound to (unless a
    wildcard) and `extra` (--allow-host); ConfigError naming --allow-host for a name that is not a host."""
    names = list(LOOPBACK_HOSTS)
    with contextlib.suppress(ValueError):  # a host name passed to --host is not added: --allow-host names it
        address = ipaddress.ip_address(bound_address)
        if not address.is_unspecified:
            names.append(f"[{address}]" if address.version == 6 else str(address))
    for name in extra:
        host = name.strip().lower()
        with contextlib.suppress(ValueError):  # a bare IPv6 address is written [addr] in a Host header
            host = f"[{ipaddress.IPv6Address(host)}]"
        if _HOST_NAME.fullmatch(host) is None:
            raise ConfigError(
                "--allow-host takes a host name such as example.org, *.example.org or 192.168.1.5 "
                "(no scheme, port or path)"
            )
        names.append(host)
    return tuple(dict.fromkeys(names))


def host_is_allowed(host: str, allowed: Iterable[str]) -> bool:
    """True when `host` (lowercase, an IPv6 address in brackets, no port) matches a name or *.suffix allowed."""
    return any(host == name or (name.startswith("*.") and host.endswith(name[1:])) for name in allowed)


def client_address(request: Request) -> str:
    """The client a request's limits are counted against: its IP address, or its /64 for IPv6 (one host's share)."""
    host = request.client.host if request.client else ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def check_origin(request: Request, hosts: Iterable[str], what: str = "votes") -> None:
    """Rejected (403) unless a post (`what`) comes from this server's own pages, on one of its allowed `hosts`."""
    # The CSRF token is the guard; a foreign Origin is refused as well, before the body is read. The page's
    # no-referrer policy makes browsers send "Origin: null" for its own forms, which therefore says nothing.
    origin = request.headers.get("origin", "null")
    if origin != "null" and not _same_allowed_origin(request, origin, hosts):
        raise Rejected(403, f"{what} are accepted only from this server's pages")
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        raise Rejected(403, f"{what} are accepted only from this server's pages")


def _same_allowed_origin(request: Request, origin: str, hosts: Iterable[str]) -> bool:
    # The Origin must name an allowed host itself, not merely match the Host header: DNS rebinding forges both.
    try:
        parts = urlsplit(origin)
        hostname = parts.hostname or ""
    except ValueError:
        return False
    host = f"[{hostname}]" if ":" in hostname else hostname
    return (
        parts.scheme == request.url.scheme
        and parts.netloc.lower() == request.headers.get("host", "").lower()
        and host_is_allowed(host, hosts)
    )


class RateLimiter:
    """A token bucket per voter: `burst` votes at once, then one every 1/`per_second` seconds."""

    def __init__(
        self,
        burst: int = 10,
        per_second: float = 1.0,
        max_tracked: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.burst, self.per_second, self.max_tracked = burst, per_second, max_tracked
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def wait_s(self, key: str) -> float:
        """0 and a vote spent when `key` may vote now; otherwise the seconds until it may."""
        now = self._clock()
        level, last = self._buckets.pop(key, (float(self.burst), now))
        level = min(float(self.burst), level + (now - last) * self.per_second)
        wait = 0.0 if level >= 1 else (1 - level) / self.per_second
        self._buckets[key] = (level - 1 if wait == 0 else level, now)
        while len(self._buckets) > self.max_tracked:  # forget the longest-idle voters first
            self._buckets.popitem(last=False)
        return wait
