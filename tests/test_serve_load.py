"""`panel serve` under load: slow or silent sockets neither block readers nor stay open; one render per change."""

from __future__ import annotations

import os
import re
import resource
import selectors
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from panel.store import Store, VoteTarget
from panel.web.serve import ServeLimits, VoteServer
from tests.helpers import copy_db
from tests.vote_clients import TLS, cast, new_reader, the_pair, votes_url

SLOW_SOCKETS = 1000


@pytest.fixture
def store(reviewed_db: Path, tmp_path: Path) -> Store:
    """The reviewed example run in a database of this test's own."""
    return Store(copy_db(reviewed_db, tmp_path))


def page_url(target: VoteTarget) -> str:
    return f"/runs/{target.run_id}/pairs/{target.pair_index + 1}"


def open_slow_sockets(port: int, target: VoteTarget, count: int) -> list[socket.socket]:
    """`count` connections: a third silent, a third stuck in their headers, a third stuck in a vote's body."""
    starts = [
        b"",
        f"GET {page_url(target)} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ".encode(),
        # A well-formed voter cookie: the server reads this vote's body, and waits for it.
        f"POST {votes_url(target)} HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: panel_voter={'v' * 43}\r\n"
        f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 200\r\n\r\ntool=".encode(),
    ]
    sockets = []
    for n in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        if starts[n % 3]:
            sock.sendall(starts[n % 3])
        sockets.append(sock)
    return sockets


def trickle(sockets: list[socket.socket], stop: threading.Event, until: float) -> None:
    """Send one more byte on every slow socket each 0.5 s (the slowloris), until `stop` or `until`."""
    while not stop.is_set() and time.monotonic() < until:
        for n, sock in enumerate(sockets):
            if n % 3:
                try:
                    sock.send(b"a")
                except OSError:
                    pass  # the server closed it
        stop.wait(0.5)


def closed_by_server(sockets: list[socket.socket], within_s: float) -> int:
    """How many of `sockets` the server closes (EOF or reset) within `within_s` seconds."""
    selector = selectors.DefaultSelector()
    for sock in sockets:
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
    closed = 0
    deadline = time.monotonic() + within_s
    while closed < len(sockets) and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=max(0.0, deadline - time.monotonic())):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            try:
                data = sock.recv(4096)
            except ConnectionError:
                data = b""
            if not data:  # a byte of an answer is no close: keep waiting for the EOF
                selector.unregister(sock)
                closed += 1
    selector.close()
    return closed


@pytest.fixture
def slow_sockets_fit() -> Iterator[None]:
    """Room in this process for the server's and the test's ends of every slow socket."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = 2 * SLOW_SOCKETS + 256
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip(f"the hard open-file limit ({hard}) is below the {needed} this test needs")
    if soft != resource.RLIM_INFINITY and soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_reader_gets_the_page_while_1000_idle_and_slowloris_sockets_are_open_and_they_are_closed(
    store: Store, slow_sockets_fit: None
) -> None:
    target = the_pair(store)
    with VoteServer(store, limits=ServeLimits(request_deadline_s=3)) as server:
        sockets = open_slow_sockets(server.port, target, SLOW_SOCKETS)
        opened = time.monotonic()
        stop = threading.Event()
        trickler = threading.Thread(target=trickle, args=(sockets, stop, opened + 20), daemon=True)
        trickler.start()
        try:
            started = time.monotonic()
            page = httpx2.get(server.url + page_url(target), timeout=5, verify=TLS)
            took = time.monotonic() - started
            assert page.status_code == 200 and target.left_name in page.text
            assert took < 5
            # Every one of them is closed by the server once its request is 3 s overdue, slowloris or not.
            assert closed_by_server(sockets, within_s=opened + 3 + 10 - time.monotonic()) == SLOW_SOCKETS
        finally:
            stop.set()
            trickler.join(timeout=5)
            for sock in sockets:
                sock.close()
        assert httpx2.get(server.url + page_url(target), timeout=5, verify=TLS).status_code == 200


def test_a_request_sent_whole_in_time_on_a_kept_alive_connection_is_answered(store: Store) -> None:
    target = the_pair(store)
    with VoteServer(store, limits=ServeLimits(request_deadline_s=1)) as server:
        with httpx2.Client(base_url=server.url, timeout=5, verify=TLS) as client:
            for _ in range(3):  # one connection; each request gets a deadline of its own
                assert client.get(page_url(target)).status_code == 200
                time.sleep(0.6)
            with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
                sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                time.sleep(0.5)  # slow, but the whole request is in before its deadline
                sock.sendall(b"\r\n")
                assert sock.recv(100).startswith(b"HTTP/1.1 200")


def test_served_page_renders_once_and_shows_each_new_vote_with_each_readers_own_form(store: Store) -> None:
    target = the_pair(store)
    left, right = target.left_tool_id, target.right_tool_id
    with VoteServer(store) as server:
        assert server.app is not None
        first, csrf = new_reader(server, target)
        second, second_csrf = new_reader(server, target)
        pages = [first.get(page_url(target)).text for _ in range(5)] + [second.get(page_url(target)).text]
        assert all(page.count("<span>Community · 0 votes</span>") == 2 for page in pages)
        assert cast(first, target, left, "ship", csrf).status_code == 200
        assert cast(second, target, left, "skip", second_csrf).status_code == 200
        assert cast(second, target, right, "ship", second_csrf).status_code == 200
        mine, theirs = first.get(page_url(target)).text, second.get(page_url(target)).text
        assert server.app.pages.renders == 1  # eight GETs and three votes later: the page was rendered once
    for page in (mine, theirs):  # each committed vote shows right away, for every reader
        assert "<strong>50%</strong><span>Community · 2 votes</span>" in page
        assert "<strong>100%</strong><span>Community · 1 vote</span>" in page
    # Each reader's page carries their own CSRF token and their own votes, never another reader's.
    assert f'value="{csrf}"' in mine and second_csrf not in mine
    assert f'value="{second_csrf}"' in theirs and csrf not in theirs
    pressed = re.compile(r'aria-label="Vote (ship|skip) on ([^"]+)" aria-pressed="true"')
    assert pressed.findall(mine) == [("ship", target.left_name)]
    assert pressed.findall(theirs) == [("skip", target.left_name), ("ship", target.right_name)]


def test_an_override_while_serving_is_refused_and_the_served_page_stays_as_rendered(
    store: Store, tmp_path: Path
) -> None:
    target = the_pair(store)
    quote = "Edited while the server was running."
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "PANEL_"))}
    with VoteServer(store) as server:
        assert server.app is not None
        reader, _ = new_reader(server, target)
        before = reader.get(page_url(target)).text
        edit = subprocess.run(
            [
                sys.executable,
                "-c",
                "from panel.cli import main; main()",
                "override",
                "--tool",
                target.left_name,
                "--persona",
                "skeptic",
                "--quote",
                quote,
                "--editor",
                "ed",
                "--db",
                str(store.path),
                "--out",
                str(tmp_path / "pages"),
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert edit.returncode == 2 and edit.stderr.strip().count("\n") == 0, edit.stderr
        assert "another panel run is writing this database" in edit.stderr and "Traceback" not in edit.stderr
        assert reader.get(page_url(target)).text == before
        assert server.app.pages.renders == 1  # the server is the only writer: its cached pages stay true
    assert quote not in str(store.overrides(target.run_id))
