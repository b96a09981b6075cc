"""Shared fixtures: a temp home for every test, the loopback fake endpoint, settings that point at both, a
reviewed database, a persona-edit workspace and a vote server. What each test file covers: tests/README.md.

Shared functions and constants are in the helper modules (tests/helpers.py and the others the README lists);
import them from there, not from this file or from a test module.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from panel.config import Settings
from panel.store import Store
from tests.fake_openai import FakeOpenAI, chair_responder, load_reference_labels, reference_responder
from tests.helpers import EXAMPLE_RUN, copy_db, reference_labels_path
from tests.persona_edit import labelled_workspace

if TYPE_CHECKING:
    from panel.web.serve import VoteServer


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test talks to a real endpoint or writes the user's database."""
    for name in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "PANEL_MODEL", "PANEL_MODE", "PANEL_ENDPOINT", "PANEL_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PANEL_DB", str(tmp_path / "panel.duckdb"))


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    """A fake endpoint that answers like the reference page's labels (business: skip; others: ship), and the chair."""
    with FakeOpenAI(
        responder=chair_responder(reference_responder(load_reference_labels(reference_labels_path())))
    ) as server:
        yield server


@pytest.fixture(scope="session")
def reviewed_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database holding the example run as `panel review` stores it from the fake endpoint; copy before writing."""
    path = tmp_path_factory.mktemp("reviewed") / "panel.duckdb"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "PANEL_"))}
    with FakeOpenAI(
        responder=chair_responder(reference_responder(load_reference_labels(reference_labels_path())))
    ) as server:
        result = subprocess.run(
            [
                sys.executable,
                "-c",
                "from panel.cli import main; main()",
                "review",
                str(EXAMPLE_RUN),
                "--base-url",
                server.base_url,
                "--db",
                str(path),
                "--out",
                str(path.parent / "pages"),
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
    assert result.returncode == 0, result.stderr
    return path


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings for a run against whatever base URL a test sets, writing under tmp_path."""
    return Settings(db_path=tmp_path / "panel.duckdb", out_dir=tmp_path / "pages", max_retries=1, timeout_s=10)


@pytest.fixture
def workspace(tmp_path: Path) -> Settings:
    """A maintainer's persona-edit workspace (tests/persona_edit.py): personas copied, labels stored."""
    return labelled_workspace(tmp_path)


@pytest.fixture
def store(reviewed_db: Path, tmp_path: Path) -> Store:
    """The reviewed example run in a database of this test's own."""
    return Store(copy_db(reviewed_db, tmp_path))


@pytest.fixture
def server(store: Store) -> Iterator[VoteServer]:
    """`panel serve` running on a free loopback port over the test's database."""
    from panel.web.serve import VoteServer  # the web stack, imported by the tests that serve only

    with VoteServer(store) as running:
        yield running
