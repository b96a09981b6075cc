"""`panel serve` on 127.0.0.1: readers vote ship or skip, change their vote, and the tally counts each reader once."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator

import httpx2
import pytest

from panel.community import CommunityTally
from panel.errors import StoreError
from panel.render import content_security_policy, render_html
from panel.store import Store
from panel.tally import tally_run
from panel.web.guards import RateLimiter
from panel.web.serve import ServeLimits, VoteServer
from tests.vote_clients import TLS, cast, new_reader, stored_events, the_pair, votes_url


@pytest.fixture
def crowd_server(store: Store) -> Iterator[VoteServer]:
    """`panel serve` with the per-address limits lifted, for many readers sharing the loopback address."""
    with VoteServer(
        store, limits=ServeLimits(new_readers_per_minute=100, votes_per_minute_per_address=1000)
    ) as running:
        yield running


def test_vote_change_vote_and_second_reader_are_tallied_once_per_reader(store: Store, server: VoteServer) -> None:
    target = the_pair(store)
    left, right = target.left_tool_id, target.right_tool_id
    first, csrf = new_reader(server, target)
    assert cast(first, target, left, "ship", csrf).json()["tools"][0] == {
        "tool_id": left,
        "name": target.left_name,
        "ship": 1,
        "skip": 0,
        "votes": 1,
        "ship_percent": "100%",
        "your_vote": "ship",
    }
    changed = cast(first, target, left, "skip", csrf).json()["tools"][0]
    assert (changed["ship"], changed["skip"], changed["votes"], changed["your_vote"]) == (0, 1, 1, "skip")
    second, csrf2 = new_reader(server, target)
    assert csrf2 != csrf
    tools = cast(second, target, left, "ship", csrf2).json()["tools"]
    assert (tools[0]["ship"], tools[0]["skip"], tools[0]["votes"], tools[0]["ship_percent"]) == (1, 1, 2, "50%")
    assert tools[1]["votes"] == 0 and tools[1]["ship_percent"] == "—"
    cast(second, target, right, "skip", csrf2)
    server.__exit__()
    events = stored_events(store)
    assert [(tool, verdict) for tool, _, verdict in events] == [
        (left, "ship"),
        (left, "skip"),
        (left, "ship"),
        (right, "skip"),
    ]
    assert len({voter for _, voter, _ in events}) == 2
    assert all(voter not in first.cookies["panel_voter"] for _, voter, _ in events)  # a hash, not the cookie
    current = {(v.tool_id, v.voter_id): v.verdict for v in Store(store.path).current_votes()}
    assert sorted(current.values()) == ["ship", "skip", "skip"]


def test_form_vote_redirects_back_to_the_page(store: Store, server: VoteServer) -> None:
    target = the_pair(store)
    client, csrf = new_reader(server, target)
    answer = client.post(votes_url(target), data={"tool": target.right_tool_id, "verdict": "ship", "csrf": csrf})
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/runs/{target.run_id}/pairs/1"
    assert client.get(answer.headers["location"]).status_code == 200


def test_200_concurrent_votes_from_50_readers_count_exactly_50(store: Store, crowd_server: VoteServer) -> None:
    target, server = the_pair(store), crowd_server

    async def crowd() -> list[int]:
        clients = [httpx2.AsyncClient(base_url=server.url, timeout=30, verify=TLS) for _ in range(50)]
        try:
            tokens = await asyncio.gather(*(c.get(votes_url(target)) for c in clients))
            csrfs = [t.json()["csrf"] for t in tokens]
            posts = [
                clients[i].post(
                    votes_url(target),
                    headers={"accept": "application/json"},
                    data={"tool": target.left_tool_id, "csrf": csrfs[i], "verdict": "ship" if i < 30 else "skip"},
                )
                for _ in range(4)
                for i in range(50)
            ]
            return [r.status_code for r in await asyncio.gather(*posts)]
        finally:
            await asyncio.gather(*(c.aclose() for c in clients))

    statuses = asyncio.run(crowd())
    assert statuses == [200] * 200
    tally = httpx2.get(server.url + votes_url(target)).json()["tools"][0]
    assert (tally["votes"], tally["ship"], tally["skip"]) == (50, 30, 20)
    assert server.app is not None and server.app.writer.batches < 200  # concurrent votes share commits
    server.__exit__()
    events = stored_events(store)
    assert len(events) == 200 and len({voter for _, voter, _ in events}) == 50
    with VoteServer(Store(store.path)) as restarted:  # the tally is derived again from the stored events
        again = httpx2.get(restarted.url + votes_url(target)).json()["tools"][0]
    assert (again["votes"], again["ship"], again["skip"]) == (50, 30, 20)


def test_untrusted_input_gets_a_4xx_and_stores_nothing(store: Store, server: VoteServer) -> None:
    target = the_pair(store)
    client, csrf = new_reader(server, target)
    other, other_csrf = new_reader(server, target)
    form = {"tool": target.left_tool_id, "verdict": "ship", "csrf": csrf}
    url = votes_url(target)
    urlencoded = {"content-type": "application/x-www-form-urlencoded"}
    cases = {
        "unknown run": (client.post("/runs/nope/pairs/1/votes", data=form), 404),
        "unknown pair": (client.post(f"/runs/{target.run_id}/pairs/2/votes", data=form), 404),
        "tool of no pair": (client.post(url, data={**form, "tool": "0" * 64}), 400),
        "verdict other than ship/skip": (client.post(url, data={**form, "verdict": "maybe"}), 400),
        "extra field": (client.post(url, data={**form, "weight": "100"}), 400),
        "repeated field": (
            client.post(url, content=f"tool={target.left_tool_id}&tool=x&verdict=ship&csrf={csrf}", headers=urlencoded),
            400,
        ),
        "missing csrf": (client.post(url, data={"tool": form["tool"], "verdict": "ship"}), 400),
        "malformed body": (client.post(url, content=b"\xff\xfe&&=", headers=urlencoded), 400),
        "json body": (client.post(url, json=form), 415),
        "oversized body": (client.post(url, content=b"tool=" + b"a" * 5000, headers=urlencoded), 413),
        "wrong csrf": (client.post(url, data={**form, "csrf": "0" * 64}), 403),
        "another reader's csrf": (client.post(url, data={**form, "csrf": other_csrf}), 403),
        "no cookie": (httpx2.post(server.url + url, data=form), 403),
        "forged cookie": (httpx2.post(server.url + url, data=form, cookies={"panel_voter": "x" * 43}), 403),
        "cross-site origin": (client.post(url, data=form, headers={"origin": "http://evil.example"}), 403),
        "PUT on the votes URL": (client.put(url, data=form), 405),
    }
    wrong = {name: (r.status_code, expected) for name, (r, expected) in cases.items() if r.status_code != expected}
    assert wrong == {}
    for response, _ in cases.values():
        assert "default-src 'none'" in response.headers["content-security-policy"]
    server.__exit__()
    assert stored_events(store) == []


def test_rate_limit_answers_429_with_retry_after_and_spares_other_readers(store: Store) -> None:
    target = the_pair(store)
    with VoteServer(store, limits=ServeLimits(burst=3, votes_per_second=0.01)) as server:
        client, csrf = new_reader(server, target)
        statuses = [
            cast(client, target, target.left_tool_id, v, csrf).status_code for v in ("ship", "skip", "ship", "skip")
        ]
        limited = cast(client, target, target.left_tool_id, "skip", csrf)
        other, other_csrf = new_reader(server, target)
        assert cast(other, target, target.left_tool_id, "ship", other_csrf).status_code == 200
    assert statuses == [200, 200, 200, 429]
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    assert len(stored_events(store)) == 4


def test_server_is_the_single_writer_and_other_processes_can_still_read(store: Store, server: VoteServer) -> None:
    target = the_pair(store)
    client, csrf = new_reader(server, target)
    assert cast(client, target, target.left_tool_id, "ship", csrf).status_code == 200
    with pytest.raises(StoreError, match="another panel run is writing this database"):
        Store(store.path).acquire_writer()
    # The vote is acknowledged once journaled; it reaches the database within the server's fold interval.
    reading = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, time; from panel.store import connect; from pathlib import Path\n"
            "for _ in range(100):\n"
            "    con = connect(Path(sys.argv[1]), read_only=True)\n"
            "    n = con.execute('SELECT count(*) FROM votes').fetchall()[0][0]\n"
            "    con.close()\n"
            "    if n: break\n"
            "    time.sleep(0.1)\n"
            "print(n)",
            str(store.path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert reading.returncode == 0, reading.stderr
    assert reading.stdout.strip() == "1"


def test_panel_serve_command_serves_votes_and_stops_cleanly_on_ctrl_c(store: Store) -> None:
    target = the_pair(store)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "PANEL_"))}
    process = subprocess.Popen(
        [sys.executable, "-c", "from panel.cli import main; main()", "serve", "--port", "0", "--db", str(store.path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(env, COLUMNS="200"),
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.search(r"serving (http://127\.0\.0\.1:\d+)/", line)
        assert match, line + (process.stderr.read() if process.poll() is not None else "")
        client = httpx2.Client(base_url=match.group(1), timeout=10, verify=TLS)
        page = client.get(f"/runs/{target.run_id}/pairs/1")
        assert page.status_code == 200 and target.left_name in page.text
        csrf = client.get(votes_url(target)).json()["csrf"]
        assert cast(client, target, target.right_tool_id, "skip", csrf).status_code == 200
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert "stopped: 1 vote stored this session" in out
    assert [verdict for _, _, verdict in stored_events(store)] == ["skip"]


def test_rate_limiter_refills_over_time() -> None:
    now = [0.0]
    limiter = RateLimiter(burst=2, per_second=0.5, clock=lambda: now[0])
    assert [limiter.wait_s("a"), limiter.wait_s("a")] == [0, 0]
    assert limiter.wait_s("a") == pytest.approx(2.0)
    assert limiter.wait_s("b") == 0
    now[0] = 2.0
    assert limiter.wait_s("a") == 0 and limiter.wait_s("a") > 0


def test_community_gap_is_panel_minus_community_in_points() -> None:
    assert CommunityTally().ship_percent == "—" and CommunityTally().gap(0.75) == "—"
    community = CommunityTally(ship=2, skip=3)
    assert (community.ship_percent, community.votes) == ("40%", 5)
    assert community.gap(0.75) == "+35 pts"
    assert CommunityTally(ship=1).gap(0.75) == "−25 pts"
    assert CommunityTally(ship=3, skip=1).gap(0.75) == "0 pts"
    assert community.gap(None) == "—"


def test_static_page_stays_form_free_and_the_served_page_carries_the_vote_forms(
    store: Store, server: VoteServer
) -> None:
    target = the_pair(store)
    tally = tally_run(store.load_run(target.run_id))
    static = render_html(tally, tally.pairs[0])
    assert "<form" not in static and "<script" not in static
    assert "form-action &#39;none&#39;" in static and "<strong>—</strong><span>Community</span>" in static
    client, _ = new_reader(server, target)
    served = client.get(f"/runs/{target.run_id}/pairs/1")
    assert served.headers["content-security-policy"].startswith(content_security_policy("'self'"))
    assert "form-action &#39;self&#39;" in served.text and "<script" not in served.text
    assert served.text.count('<form class="vote" method="post"') == 2
    assert served.text.count("<span>Community · 0 votes</span>") == 2
