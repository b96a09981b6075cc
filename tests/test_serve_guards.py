"""What `panel serve` refuses: made-up voter cookies, ballot stuffing from one address, forged Host headers
(DNS rebinding), and pair numbers no run has; every refusal carries the security headers."""

from __future__ import annotations

import secrets
import socket
import stat
import time

import httpx2
import pytest

from panel.errors import PanelError
from panel.store import Store
from panel.web.serve import ServeLimits, VoteServer
from tests.vote_clients import TLS, cast, new_reader, stored_events, the_pair, votes_url

# The figures README.md ("Community votes") documents for the default limits.
DOCUMENTED_NEW_READERS_AT_ONCE = 10
DOCUMENTED_NEW_READERS_PER_MINUTE = 10
DOCUMENTED_COUNTED_VOTES_PER_MINUTE = 120


def assert_security_headers(response: httpx2.Response) -> None:
    """The headers every answer of the server carries, refusals included."""
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"


def test_uvicorns_own_400_and_503_carry_the_security_headers_too(store: Store) -> None:
    with VoteServer(store) as server:  # a request h11 cannot parse never reaches the app: uvicorn answers 400
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(b"NOT AN HTTP REQUEST\r\n\r\n")
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
    status, *header_lines = answer.split(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in header_lines)
    assert status.startswith("HTTP/1.1 400")
    assert "default-src 'none'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff" and headers["cache-control"] == "no-store"
    # One connection allowed, and the request's own fills it: uvicorn answers 503 before the app is called.
    with VoteServer(store, limits=ServeLimits(max_connections=1)) as server:
        refused = httpx2.get(server.url + "/", timeout=10, verify=TLS)
    assert refused.status_code == 503
    assert_security_headers(refused)


def made_up_token() -> str:
    """A voter token of the issued shape (reader id . signature) that this server never signed."""
    return f"{secrets.token_urlsafe(16)}.{secrets.token_urlsafe(32)}"


def test_a_made_up_or_tampered_voter_cookie_cannot_vote_and_gets_a_fresh_issued_one(
    store: Store, server: VoteServer
) -> None:
    target = the_pair(store)
    reader, _ = new_reader(server, target)
    issued = reader.cookies["panel_voter"]
    tampered = issued[:-1] + ("A" if issued[-1] != "A" else "B")
    stuffer = httpx2.Client(base_url=server.url, timeout=10, verify=TLS)
    for token in (secrets.token_urlsafe(32), made_up_token(), tampered):  # the old 43-character shape too
        # What a stuffer does: present the made-up cookie, take the CSRF token the server answers with, vote.
        stuffer.cookies.clear()
        answer = stuffer.get(votes_url(target), headers={"cookie": f"panel_voter={token}"})
        assert answer.status_code == 200
        fresh = answer.cookies.get("panel_voter")
        assert fresh is not None and fresh != token  # the reader is issued a real cookie instead
        stuffer.cookies.clear()
        refused = stuffer.post(
            votes_url(target),
            headers={"cookie": f"panel_voter={token}"},
            data={"tool": target.left_tool_id, "verdict": "ship", "csrf": answer.json()["csrf"]},
        )
        assert refused.status_code == 403 and refused.text.count("\n") == 1
        assert_security_headers(refused)
    assert reader.get(votes_url(target)).json()["tools"][0]["votes"] == 0
    server.__exit__()
    assert stored_events(store) == []


def test_a_client_discarding_cookies_adds_no_more_than_the_documented_votes_a_minute(store: Store) -> None:
    target = the_pair(store)
    issued = 0
    with VoteServer(store) as server, httpx2.Client(base_url=server.url, timeout=10, verify=TLS) as client:
        started = time.monotonic()
        for n in range(500):  # a stuffer: a fresh cookie per round, and a made-up X-Forwarded-For address
            if time.monotonic() - started > 3:
                break
            client.cookies.clear()
            spoofed = {"x-forwarded-for": f"10.{n // 65536}.{n // 256 % 256}.{n % 256}"}
            answer = client.get(votes_url(target), headers=spoofed)
            if answer.status_code == 429:
                assert int(answer.headers["retry-after"]) >= 1
                assert_security_headers(answer)
                continue
            issued += 1
            for tool in (target.left_tool_id, target.right_tool_id):
                client.post(
                    votes_url(target),
                    data={"tool": tool, "verdict": "ship", "csrf": answer.json()["csrf"]},
                    headers={**spoofed, "accept": "application/json"},
                )
        elapsed = time.monotonic() - started
    counted = {(tool, voter) for tool, voter, _ in stored_events(store)}
    assert issued <= DOCUMENTED_NEW_READERS_AT_ONCE + DOCUMENTED_NEW_READERS_PER_MINUTE * elapsed / 60 + 1
    assert 0 < len(counted) <= min(DOCUMENTED_COUNTED_VOTES_PER_MINUTE, 2 * issued)


def test_cookies_hoarded_by_one_address_share_its_votes_a_minute(store: Store) -> None:
    target = the_pair(store)
    with VoteServer(store, limits=ServeLimits(new_readers_per_minute=20, votes_per_minute_per_address=5)) as server:
        readers = [new_reader(server, target) for _ in range(8)]
        statuses = [cast(client, target, target.left_tool_id, "ship", csrf).status_code for client, csrf in readers]
        # Past the address's new-cookie limit: no new cookie, but readers holding one vote and everyone reads.
        newcomer = httpx2.Client(base_url=server.url, timeout=10, verify=TLS)
        for _ in range(20):
            newcomer.cookies.clear()
            newcomer.get(votes_url(target))
        newcomer.cookies.clear()
        assert newcomer.get(votes_url(target)).status_code == 429
        read_only = newcomer.get(f"/runs/{target.run_id}/pairs/1")  # the page still shows, without the buttons
        assert read_only.status_code == 200 and "<form" not in read_only.text and "set-cookie" not in read_only.headers
        assert readers[0][0].get(f"/runs/{target.run_id}/pairs/1").status_code == 200
    assert statuses == [200] * 5 + [429] * 3
    assert len(stored_events(store)) == 5


def test_a_forged_host_is_answered_400_with_the_security_headers(store: Store, server: VoteServer) -> None:
    target = the_pair(store)
    page = f"/runs/{target.run_id}/pairs/1"
    client = httpx2.Client(base_url=server.url, timeout=10, verify=TLS)
    for host in ("evil.example", f"evil.example:{server.port}", "127.0.0.1.evil.example", "localhost.evil.example:80"):
        for path in ("/", page, page + "/votes", "/no-such-page"):
            answer = client.get(path, headers={"host": host})
            assert answer.status_code == 400, (host, path)
            assert_security_headers(answer)
    for host in (f"localhost:{server.port}", f"127.0.0.1:{server.port}", f"[::1]:{server.port}", "LOCALHOST"):
        assert client.get(page, headers={"host": host}).status_code == 200


def test_a_trailing_slash_with_a_forged_host_is_refused_not_redirected(store: Store, server: VoteServer) -> None:
    target = the_pair(store)
    client = httpx2.Client(base_url=server.url, timeout=10, verify=TLS)
    slashed = f"/runs/{target.run_id}/pairs/1/"
    forged = client.get(slashed, headers={"host": "evil.example"})
    assert forged.status_code == 400 and "location" not in forged.headers
    assert_security_headers(forged)
    own = client.get(slashed)
    assert own.status_code in (307, 308) and own.headers["location"] == server.url + f"/runs/{target.run_id}/pairs/1"


def test_a_forged_host_with_a_matching_origin_cannot_vote(store: Store, server: VoteServer) -> None:
    target = the_pair(store)
    client, csrf = new_reader(server, target)
    form = {"tool": target.left_tool_id, "verdict": "ship", "csrf": csrf}
    for host in ("evil.example", f"evil.example:{server.port}"):  # DNS rebinding: both headers name the attacker
        rebound = client.post(votes_url(target), data=form, headers={"host": host, "origin": f"http://{host}"})
        assert rebound.status_code == 400
        assert_security_headers(rebound)
    allowed_host_foreign_origin = client.post(
        votes_url(target),
        data=form,
        headers={"host": f"localhost:{server.port}", "origin": f"http://evil.example:{server.port}"},
    )
    assert allowed_host_foreign_origin.status_code == 403
    own = client.post(votes_url(target), data=form, headers={"origin": server.url, "accept": "application/json"})
    assert own.status_code == 200
    server.__exit__()
    assert len(stored_events(store)) == 1


def test_allow_host_adds_a_name_that_may_serve_and_vote(store: Store) -> None:
    target = the_pair(store)
    with VoteServer(store, allow_hosts=["Votes.Example.org"]) as server:
        client, csrf = new_reader(server, target)
        host = f"votes.example.org:{server.port}"
        form = {"tool": target.left_tool_id, "verdict": "ship", "csrf": csrf}
        assert client.get(f"/runs/{target.run_id}/pairs/1", headers={"host": host}).status_code == 200
        assert (
            client.post(votes_url(target), data=form, headers={"host": host, "origin": f"http://{host}"}).status_code
            == 303
        )
        assert client.get("/", headers={"host": "other.example.org"}).status_code == 400
    for bad in ("http://votes.example.org", "votes.example.org:8000", "votes.example.org/path", "", "a b"):
        with pytest.raises(PanelError, match="^--allow-host takes a host name"):
            VoteServer(store, allow_hosts=[bad])


@pytest.mark.parametrize("number", ["9" * 5000, "0", "-1", "01", "2", "1e3", "１"])
def test_a_pair_number_no_run_has_is_404_with_the_security_headers(
    store: Store, server: VoteServer, number: str
) -> None:
    target = the_pair(store)
    client, csrf = new_reader(server, target)
    page = f"/runs/{target.run_id}/pairs/{number}"
    answers = [
        client.get(page),
        client.get(page + "/votes"),
        client.post(page + "/votes", data={"tool": target.left_tool_id, "verdict": "ship", "csrf": csrf}),
    ]
    for answer in answers:
        assert answer.status_code == 404 and answer.text == "no such pair\n"
        assert_security_headers(answer)


def test_voter_cookies_outlive_a_restart_and_the_secret_beside_the_database_is_private(store: Store) -> None:
    target = the_pair(store)
    with VoteServer(store) as server:
        client, csrf = new_reader(server, target)
    secret = store.path.with_name(store.path.name + ".voter-secret")
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    with VoteServer(Store(store.path)) as restarted:
        client.base_url = httpx2.URL(restarted.url)
        assert cast(client, target, target.left_tool_id, "ship", csrf).status_code == 200
    secret.chmod(0o644)
    with pytest.raises(PanelError, match=r"panel\.duckdb\.voter-secret: the voter secret is open to other users"):
        VoteServer(Store(store.path)).__enter__()
    after = Store(store.path)
    after.acquire_writer()  # the refused start released the writer lock
    after.release_writer()


def test_a_vote_whose_csrf_token_is_not_ascii_is_refused_not_a_server_error(store: Store, server: VoteServer) -> None:
    target = the_pair(store)
    client, _ = new_reader(server, target)
    for csrf in ("é", "%C3%A9", "\u0660" * 64):
        refused = client.post(
            votes_url(target),
            data={"tool": target.left_tool_id, "verdict": "ship", "csrf": csrf},
            headers={"origin": server.url},
        )
        assert refused.status_code == 403, refused.text
        assert_security_headers(refused)
