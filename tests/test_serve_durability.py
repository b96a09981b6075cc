"""`panel serve` answers a vote once it is in the journal: a reader holding the database, or kill -9, loses none."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import duckdb
import httpx2
import pytest

from panel.cli.community import stop_summary
from panel.store import Store
from panel.store.journal import Journal
from panel.web.serve import VoteServer
from tests.helpers import PANEL, copy_db
from tests.vote_clients import TLS, cast, new_reader, the_pair, votes_url


@pytest.fixture
def store(reviewed_db: Path, tmp_path: Path) -> Store:
    """The reviewed example run in a database of this test's own."""
    return Store(copy_db(reviewed_db, tmp_path))


def hold_for_reading(db: Path) -> subprocess.Popen[str]:
    """Another process holding the database open read-only (as `panel sql` does) until its stdin closes."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys; con = duckdb.connect(sys.argv[1], "
            "read_only=True); print('holding', flush=True); sys.stdin.read()",
            str(db),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
    return holder


def stored_votes(db: Path) -> list[tuple[str, str]]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute("SELECT tool_id, verdict FROM votes ORDER BY vote_id").fetchall()


def test_a_vote_acknowledged_while_a_reader_holds_the_database_survives_kill_9_and_is_stored_once(store: Store) -> None:
    target = the_pair(store)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "PANEL_"))}
    server = subprocess.Popen(
        [*PANEL, "serve", "--port", "0", "--db", str(store.path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(env, COLUMNS="200"),
    )
    holder: subprocess.Popen[str] | None = None
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        match = re.search(r"serving (http://127\.0\.0\.1:\d+)/", line)
        assert match, line + (server.stderr.read() if server.poll() is not None else "")
        holder = hold_for_reading(store.path)  # once serving: the server checks it can write before it listens
        # Before the journal, the vote waited 15 s for the reader to let go of the file, then got a 503.
        client = httpx2.Client(base_url=match.group(1), timeout=5, verify=TLS)
        csrf = client.get(votes_url(target)).json()["csrf"]
        answer = cast(client, target, target.left_tool_id, "ship", csrf)
        assert answer.status_code == 200
        assert answer.json()["tools"][0]["ship"] == 1
        os.kill(server.pid, signal.SIGKILL)
        server.wait(timeout=30)
        # Still held: the vote is only in the journal, and a panel command reading the votes counts it.
        assert Store(store.path).current_votes()[-1].verdict == "ship"
    finally:
        if server.poll() is None:
            server.kill()
        if holder is not None:
            holder.communicate(input="", timeout=30)
    assert stored_votes(store.path) == []
    Store(store.path)  # the next process to open the database for writing folds the journal
    assert stored_votes(store.path) == [(target.left_tool_id, "ship")]
    assert Journal(store.path).empty()
    Store(store.path)
    assert stored_votes(store.path) == [(target.left_tool_id, "ship")]


def test_stopping_while_a_reader_holds_the_database_says_the_votes_wait_in_the_journal(store: Store) -> None:
    target = the_pair(store)
    server = VoteServer(store)
    holder: subprocess.Popen[str] | None = None
    try:
        with server:
            holder = hold_for_reading(store.path)
            client, csrf = new_reader(server, target)
            assert cast(client, target, target.right_tool_id, "skip", csrf).status_code == 200
        # Left the block: the server stopped while the reader still held the file.
    finally:
        if holder is not None:
            holder.communicate(input="", timeout=30)
    assert server.app is not None and server.app.writer.unfolded
    summary = stop_summary(server.app.writer)
    assert summary.startswith("stopped: 1 vote stored this session")
    assert f"some still wait in {store.journal.path}" in summary
    Store(store.path)
    assert stored_votes(store.path) == [(target.right_tool_id, "skip")]


def test_an_append_while_a_fold_commits_does_not_wait_for_it_and_is_kept_for_the_next(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "panel.duckdb")
    journal.append({"id": "folded", "kind": "votes", "run_id": "r", "votes": []})
    appended = threading.Event()
    with journal.folding() as records:  # the block stands for the database's transaction and commit
        assert [record["id"] for record in records] == ["folded"]
        late = threading.Thread(
            target=lambda: (journal.append({"id": "late", "kind": "votes", "run_id": "r", "votes": []}), appended.set())
        )
        late.start()
        # The old journal held its lock through the commit: a vote's acknowledgement waited for DuckDB.
        assert appended.wait(timeout=5), "the append waited for the fold"
    late.join()
    assert [record["id"] for record in journal.pending()] == ["late"]
    journal.append({"id": "next", "kind": "votes", "run_id": "r", "votes": []})
    assert [record["id"] for record in journal.pending()] == ["late", "next"]
