"""Shared fixtures: a temp home for every test, the loopback fake endpoint, settings that point at both."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from panel.config import Settings
from tests.fake_openai import FakeOpenAI, chair_responder, load_reference_labels, reference_responder

# The repository root: itself a panel project (its panel.toml), where the CLI tests run.
PROJECT_ROOT = Path(__file__).resolve().parent.parent
REFERENCE = PROJECT_ROOT.parent / "shared" / "reference"
EXAMPLE_RUN = PROJECT_ROOT / "runs" / "example.yaml"


def reference_file(name: str) -> Path:
    """A file of the reference page (shared/reference beside the checkout, else the copy in tests/data)."""
    path = REFERENCE / name
    return path if path.exists() else PROJECT_ROOT / "tests" / "data" / name


def reference_labels_path() -> Path:
    """The labelled reviews of the reference page."""
    return reference_file("labelled-reviews.jsonl")


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test talks to a real endpoint or writes the user's database."""
    for name in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "PANEL_MODEL", "PANEL_MODE", "PANEL_ENDPOINT", "PANEL_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PANEL_DB", str(tmp_path / "panel.duckdb"))


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    """A fake endpoint that answers like the reference page's labels (business: skip; others: ship), and the chair."""
    with FakeOpenAI(responder=chair_responder(reference_responder(load_reference_labels(reference_labels_path())))) as server:
        yield server


@pytest.fixture(scope="session")
def reviewed_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database holding the example run as `panel review` stores it from the fake endpoint; copy before writing."""
    path = tmp_path_factory.mktemp("reviewed") / "panel.duckdb"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "PANEL_"))}
    with FakeOpenAI(responder=chair_responder(reference_responder(load_reference_labels(reference_labels_path())))) as server:
        result = subprocess.run([sys.executable, "-c", "from panel.cli import main; main()", "review", str(EXAMPLE_RUN),
                                 "--base-url", server.base_url, "--db", str(path), "--out", str(path.parent / "pages")],
                                capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    return path


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings for a run against whatever base URL a test sets, writing under tmp_path."""
    return Settings(db_path=tmp_path / "panel.duckdb", out_dir=tmp_path / "pages", max_retries=1, timeout_s=10)


def chat_requests(server: FakeOpenAI) -> list:
    """The chat-completion requests the fake received (not /models probes)."""
    return [r for r in server.requests if r.path.endswith("/chat/completions")]
