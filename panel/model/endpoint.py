"""Which endpoint answers: where requests go, its base URL spelled one way, whether it is this machine, its key."""

from __future__ import annotations

import functools
import ipaddress
import os
from dataclasses import dataclass
from urllib.parse import urlsplit

from panel.config import Settings
from panel.errors import EndpointError

DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass
class Endpoint:
    """Where requests go: a base URL, and whether it is the embedded server (the model name is Settings.model_name)."""

    base_url: str
    embedded: bool


@functools.cache
def normalise_base_url(base_url: str) -> str:
    """One spelling per endpoint: scheme and host lowercased, default port, credentials and trailing slashes
    dropped, and a final /v1 dropped ("https://API.x.com:443/v1/" -> "https://api.x.com")."""
    parts = urlsplit(base_url.strip())
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if ":" in host:  # an IPv6 literal keeps its brackets
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        raise EndpointError("the endpoint's port is not a number: fix OPENAI_BASE_URL or --base-url") from None
    if port is not None and port != DEFAULT_PORTS.get(scheme):
        host = f"{host}:{port}"
    path = parts.path.rstrip("/")
    if path.endswith("/v1"):
        path = path[: -len("/v1")]
    query = f"?{parts.query}" if parts.query else ""
    return f"{scheme}://{host}{path}{query}"


def is_loopback(base_url: str) -> bool:
    """True when `base_url` names this machine (localhost, 127.0.0.0/8, ::1, or 0.0.0.0 as servers print it)."""
    host = (urlsplit(base_url.strip()).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def api_key(settings: Settings) -> str:
    """The key in the variable the endpoint profile names (api_key_env), read now; a placeholder when unset,
    since local servers take any key and the SDK refuses to start without one."""
    return os.environ.get(settings.api_key_env) or "not-needed"


def missing_key_warning(settings: Settings) -> str | None:
    """One line to warn with when a remote endpoint is configured and its key variable is unset or empty."""
    if settings.embedded or os.environ.get(settings.api_key_env) or is_loopback(settings.base_url or ""):
        return None
    return (
        f"warning: {settings.api_key_env} is not set and the endpoint is not on this machine: "
        "it will likely refuse requests"
    )
