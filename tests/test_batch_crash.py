"""Batch mode under kill -9: during the upload, after create before the batch is recorded, and during a collect.

Each time the rerun ends with every verdict stored exactly once and no request sent in two live batches."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from panel.store import Store
from tests.fake_openai import FakeOpenAI
from tests.helpers import PANEL, batch_lines_stored, run_panel, write_synthetic_run

PAIRS = 80  # 640 verdicts: a collect of two chunks (collect.CHUNK_LINES)


@pytest.fixture
def run_file(tmp_path: Path) -> Path:
    """A synthetic run of PAIRS pairs."""
    return write_synthetic_run(tmp_path / "runs", PAIRS)


def _args(fake: FakeOpenAI, run_file: Path, tmp_path: Path) -> list[str]:
    return [
        "review",
        str(run_file),
        "--batch",
        "--wait",
        "--poll-seconds",
        "0.05",
        "--base-url",
        fake.base_url,
        "--model",
        "fake-model",
        "--out",
        str(tmp_path / "pages"),
    ]


def _kill_when(args: list[str], ready: Callable[[], bool], after_s: float = 0.0) -> None:
    child = subprocess.Popen([*PANEL, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=dict(os.environ))
    deadline = time.monotonic() + 60
    while not ready():
        assert child.poll() is None, "the command ended before it could be killed"
        assert time.monotonic() < deadline, "the moment to kill never came"
        time.sleep(0.01)
    time.sleep(after_s)
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL


def _every_verdict_once(db: Path, expected: int) -> None:
    with Store(db).reader() as con:
        counts = con.execute(
            "SELECT count(*), count(DISTINCT cache_key), bool_and(valid) FROM verdicts WHERE persona_id <> 'chair'"
        ).fetchone()
    assert counts == (expected, expected, True)


def _reviewer_keys_sent(fake: FakeOpenAI) -> list[str]:
    keys = []
    for batch in fake.batch_api.batches.values():
        keys += [r["custom_id"] for r in batch.requests if "BEGIN PANEL VERDICTS" not in str(r["body"]["messages"])]
    return keys


def test_kill_during_collect_then_rerun_stores_every_verdict_exactly_once(fake: FakeOpenAI, run_file, tmp_path):
    fake.batch_api.content_delay = 0.1  # 64 KiB a step: the collect takes a second or two
    db = Path(os.environ["PANEL_DB"])
    _kill_when(_args(fake, run_file, tmp_path), lambda: bool(fake.batch_api.downloads) and batch_lines_stored(db) > 0)
    with Store(db).reader() as con:
        kept = con.execute("SELECT count(*) FROM batch_lines").fetchone()[0]
    assert 0 < kept < PAIRS * 8, f"the kill did not land mid-collect ({kept} lines stored)"
    rerun = run_panel(*_args(fake, run_file, tmp_path), timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{PAIRS * 8 - kept:,} stored, {kept:,} already stored" in rerun.stdout
    _every_verdict_once(db, PAIRS * 8)
    keys = _reviewer_keys_sent(fake)
    assert len(keys) == len(set(keys)) == PAIRS * 8  # one reviewers' batch, never resent


def test_kill_after_create_before_it_is_recorded_finds_the_batch_instead_of_resending(
    fake: FakeOpenAI, run_file, tmp_path
):
    fake.batch_api.create_delay = 30  # the batch exists on the endpoint; the answer never reaches panel
    _kill_when(_args(fake, run_file, tmp_path), lambda: bool(fake.batch_api.batches))
    fake.batch_api.create_delay = 0
    db = Path(os.environ["PANEL_DB"])
    with Store(db).reader() as con:
        assert con.execute("SELECT state, batch_id FROM batches").fetchall() == [("pending", None)]
    rerun = run_panel(*_args(fake, run_file, tmp_path), timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    _every_verdict_once(db, PAIRS * 8)
    keys = _reviewer_keys_sent(fake)
    assert len(keys) == len(set(keys)) == PAIRS * 8
    assert len(fake.batch_api.batches) == 2  # the adopted reviewers' batch and the chair's


def test_kill_during_upload_sends_the_batch_once_on_rerun(fake: FakeOpenAI, run_file, tmp_path):
    fake.batch_api.upload_delay = 30  # stored by the endpoint, never answered: no batch was created
    _kill_when(_args(fake, run_file, tmp_path), lambda: bool(fake.batch_api.files))
    fake.batch_api.upload_delay = 0
    rerun = run_panel(*_args(fake, run_file, tmp_path), timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    db = Path(os.environ["PANEL_DB"])
    _every_verdict_once(db, PAIRS * 8)
    with Store(db).reader() as con:
        states = sorted(row[0] for row in con.execute("SELECT state FROM batches").fetchall())
    assert states == ["completed", "completed", "unsent"]
    keys = _reviewer_keys_sent(fake)
    assert len(keys) == len(set(keys)) == PAIRS * 8
