"""A reader of `panel serve` (panel.serve.VoteServer on loopback): its client, the pair it votes on, a vote.

Not a test module: the tests are the test_serve*.py files; the `store` and `server` fixtures are in
tests/conftest.py.
"""

from __future__ import annotations

import ssl

import duckdb
import httpx2

from panel.store import Store, VoteTarget
from panel.web.serve import VoteServer

# Building a TLS context costs ~80 ms per client; the loopback server is plain HTTP, so share one.
TLS = ssl.create_default_context()


def the_pair(store: Store) -> VoteTarget:
    """The example run's one pair."""
    [target] = store.vote_targets()
    return target


def votes_url(target: VoteTarget) -> str:
    return f"/runs/{target.run_id}/pairs/{target.pair_index + 1}/votes"


def cast(client: httpx2.Client, target: VoteTarget, tool_id: str, verdict: str, csrf: str) -> httpx2.Response:
    """Post a vote as the API does (Accept: application/json answers with the new tallies)."""
    return client.post(
        votes_url(target),
        data={"tool": tool_id, "verdict": verdict, "csrf": csrf},
        headers={"accept": "application/json"},
    )


def new_reader(server: VoteServer, target: VoteTarget) -> tuple[httpx2.Client, str]:
    """A new reader: a client holding the voter cookie and CSRF token the server issued to it."""
    client = httpx2.Client(base_url=server.url, timeout=10, verify=TLS)
    answer = client.get(votes_url(target))
    assert answer.status_code == 200 and "panel_voter" in client.cookies
    return client, answer.json()["csrf"]


def stored_events(store: Store) -> list[tuple[str, str, str]]:
    """Every vote event in the database (read after the server stopped), oldest first."""
    with duckdb.connect(str(store.path), read_only=True) as con:
        return con.execute("SELECT tool_id, voter_token, verdict FROM votes ORDER BY vote_id").fetchall()
