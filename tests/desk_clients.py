"""An editor at `panel desk` (panel.web.desk.DeskServer on loopback) without a browser: a signed-in client,
the pair it edits, and the CSRF token of a page.

Not a test module: the tests are the test_desk*.py files.
"""

from __future__ import annotations

import re
import ssl

import httpx2

from panel.store import Store
from panel.web.desk import DeskServer

# The loopback desk is plain HTTP: one shared TLS context saves building one per client.
TLS = ssl.create_default_context()


def signed_in(desk: DeskServer) -> httpx2.Client:
    """A client that opened the printed URL: its token traded for the session cookie (the 303 checked)."""
    client = httpx2.Client(base_url=desk.url, timeout=20, verify=TLS)
    traded = client.get(desk.tokened_url)
    assert traded.status_code == 303 and traded.headers["location"] == "/", traded.text
    return client


def first_pair_path(store: Store) -> str:
    """The desk's path of the latest run's first pair."""
    return f"/runs/{store.resolve_run_id(None)}/pairs/1"


def csrf_of(html: str) -> str:
    """The CSRF token a desk page's forms carry."""
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None, "the page has no form"
    return found.group(1)
