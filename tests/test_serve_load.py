"""`panel serve` under load: pages render once per change of their run, votes and forms filled in per reader."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from panel.serve import VoteServer
from panel.store import Store, VoteTarget
from tests.test_serve import cast, copy_db, new_reader, the_pair


@pytest.fixture
def store(reviewed_db: Path, tmp_path: Path) -> Store:
    """The reviewed example run in a database of this test's own."""
    return Store(copy_db(reviewed_db, tmp_path))


def page_url(target: VoteTarget) -> str:
    return f"/runs/{target.run_id}/pairs/{target.pair_index + 1}"


def test_served_page_renders_once_and_shows_each_new_vote_with_each_readers_own_form(
        store: Store) -> None:
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


def test_an_editors_override_while_serving_shows_on_the_served_page(store: Store, tmp_path: Path) -> None:
    target = the_pair(store)
    quote = "Edited while the server was running."
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "PANEL_"))}
    with VoteServer(store) as server:
        assert server.app is not None
        reader, _ = new_reader(server, target)
        assert quote not in reader.get(page_url(target)).text
        edit = subprocess.run([sys.executable, "-c", "from panel.cli import main; main()", "override", "--tool",
                               target.left_name, "--persona", "skeptic", "--quote", quote, "--editor", "ed",
                               "--db", str(store.path), "--out", str(tmp_path / "pages")],
                              capture_output=True, text=True, env=env, timeout=60)
        assert edit.returncode == 0, edit.stderr
        deadline = time.monotonic() + 15  # the server looks for edits every 5 s
        while quote not in (page := reader.get(page_url(target)).text) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert quote in page
        assert server.app.pages.renders == 2  # once at first, once after the edit
