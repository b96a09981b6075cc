"""Crash safety as a user meets it: kill -9 mid-run, resume, a second writer, readers during a run, budgets."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from panel.store import BATCH_INTERVAL_S, connect
from tests.fake_openai import FakeOpenAI
from tests.helpers import EXAMPLE_RUN, PANEL, PROJECT_ROOT, chat_requests, write_synthetic_run

REVIEWS = "FROM verdicts WHERE persona_id <> 'chair'"  # the reviewers' verdicts; the chair's summaries come after
ENV = dict(os.environ, PYTHONUNBUFFERED="1", COLUMNS="200")


@pytest.fixture
def slow_fake() -> Iterator[str]:
    """`python -m tests.fake_openai --latency 0.1` in its own process; yields its base URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fake_openai", "--latency", "0.1"],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline() if process.stdout else ""
        assert line.startswith("READY "), line
        yield line.split()[1]
    finally:
        process.terminate()
        process.wait(timeout=10)


def _default_sigint() -> None:
    # As a terminal would: a suite started in the background of a script (`make test &`) runs with SIGINT
    # ignored, children inherit that, and then Python installs no KeyboardInterrupt handler at all.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_review(run_file: Path, base_url: str, db: Path, *flags: str) -> subprocess.Popen:
    # --model: without one, the line naming the model the fake lists would come before what these tests read
    return subprocess.Popen(
        [
            *PANEL,
            "review",
            str(run_file),
            "--base-url",
            base_url,
            "--model",
            "fake-model",
            "--db",
            str(db),
            "--out",
            str(db.parent / "pages"),
            *flags,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
        cwd=PROJECT_ROOT,
        preexec_fn=_default_sigint,
    )


def read_until(process: subprocess.Popen, done: callable) -> list[str]:
    """Read the process's stdout lines until `done(lines)` holds (or the output ends)."""
    lines: list[str] = []
    while process.stdout and not done(lines):
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
    return lines


def query(db: Path, sql: str) -> list[tuple]:
    with connect(db, read_only=True) as con:
        return con.execute(sql).fetchall()


def test_killed_run_resumes_with_every_verdict_exactly_once(slow_fake: str, tmp_path: Path) -> None:
    run_file, db = write_synthetic_run(tmp_path, pairs=10), tmp_path / "panel.duckdb"  # 80 verdicts
    first = start_review(run_file, slow_fake, db, "--concurrency", "4")
    answered = read_until(first, lambda lines: sum(" on Synthetic Tool" in line for line in lines) >= 40)
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    assert first.returncode == -signal.SIGKILL, "the run ended before it could be killed: " + "".join(answered)

    committed = query(db, f"SELECT count(*), count(DISTINCT cache_key), count(*) FILTER (WHERE valid) {REVIEWS}")
    kept = committed[0][0]
    assert 0 < kept < 80 and committed == [(kept, kept, kept)]

    resumed = start_review(run_file, slow_fake, db, "--concurrency", "4")
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    # The database held `kept` at the kill; answers still in the journal are folded in when the rerun opens it.
    cached = int(re.search(r"(\d+) cached, (\d+) to ask", out).group(1))
    assert kept <= cached < 80 and f"{cached} cached, {80 - cached} to ask" in out and "finished: 80 verdicts" in out
    assert query(db, f"SELECT count(*), count(DISTINCT cache_key), bool_and(valid) {REVIEWS}") == [(80, 80, True)]
    assert query(db, f"SELECT count(*) FROM attempts WHERE verdict_id IN (SELECT verdict_id {REVIEWS})") == [(80,)]
    assert query(db, "SELECT status FROM runs") == [("finished",)]


def test_ctrl_c_keeps_every_answer_received_and_says_how_to_resume(slow_fake: str, tmp_path: Path) -> None:
    run_file, db = write_synthetic_run(tmp_path, pairs=5), tmp_path / "panel.duckdb"  # 40 verdicts
    run = start_review(run_file, slow_fake, db, "--concurrency", "2")
    answered = read_until(run, lambda lines: sum(" on Synthetic Tool" in line for line in lines) >= 6)
    run.send_signal(signal.SIGINT)
    out, err = run.communicate(timeout=30)
    printed = sum(" on Synthetic Tool" in line for line in answered + out.splitlines())
    assert run.returncode == 130 and "Traceback" not in err
    assert (
        err.split() == ("interrupted: the answers received so far are stored; rerun the same command to resume").split()
    )
    assert query(db, f"SELECT count(*) {REVIEWS}") == [(printed,)] and printed < 40
    assert query(db, "SELECT status FROM runs") == [("stopped",)]


def test_second_writer_gets_a_one_line_refusal_at_once(slow_fake: str, tmp_path: Path) -> None:
    run_file, db = write_synthetic_run(tmp_path, pairs=6), tmp_path / "panel.duckdb"  # 48 verdicts, ~5 s
    first = start_review(run_file, slow_fake, db, "--concurrency", "1")
    read_until(first, lambda lines: any("to ask" in line for line in lines))  # it holds the writer lock now
    started = time.monotonic()
    second = start_review(run_file, slow_fake, db)
    out, err = second.communicate(timeout=60)
    refused_s = time.monotonic() - started
    still_running = first.poll() is None
    first.kill()
    first.wait(timeout=10)
    started = time.monotonic()
    subprocess.run([*PANEL, "--help"], env=ENV, cwd=PROJECT_ROOT, capture_output=True, timeout=60, check=True)
    startup_s = time.monotonic() - started
    assert still_running
    assert second.returncode == 2 and "Traceback" not in err
    assert err.strip().count("\n") == 0 and "another panel run is writing this database (pid" in err
    assert refused_s < startup_s + 1.0, f"refusal took {refused_s:.2f} s, starting panel alone {startup_s:.2f} s"


def test_readers_query_while_a_run_writes(slow_fake: str, tmp_path: Path) -> None:
    run_file, db = write_synthetic_run(tmp_path, pairs=4), tmp_path / "panel.duckdb"  # 32 verdicts, ~1.6 s
    run = start_review(run_file, slow_fake, db, "--concurrency", "2")
    read_until(run, lambda lines: any("to ask" in line for line in lines))
    seen, waits = [], []
    while run.poll() is None:
        started = time.monotonic()
        seen.append(query(db, f"SELECT count(*) {REVIEWS}")[0][0])
        waits.append(time.monotonic() - started)
        time.sleep(0.1)
    assert run.wait() == 0
    assert len(seen) >= 5 and max(waits) < 1.0
    assert any(0 < count < 32 for count in seen), f"no batch seen mid-run: {seen}"
    assert seen == sorted(seen)


def test_budget_stop_says_how_to_resume_and_the_rerun_finishes(fake: FakeOpenAI, tmp_path: Path) -> None:
    db = tmp_path / "panel.duckdb"
    stopped = start_review(EXAMPLE_RUN, fake.base_url, db, "--max-requests", "3", "--concurrency", "2")
    out, err = stopped.communicate(timeout=120)
    assert stopped.returncode == 2 and "Traceback" not in err
    assert err.strip() == (
        "error: request budget of 3 reached: 3 of 8 verdicts stored; "
        "rerun the same command to resume (raise or drop the budget flag)"
    )
    assert "stopped: 8 verdicts, 0 cached, 3 asked" in out
    resumed = start_review(EXAMPLE_RUN, fake.base_url, db)
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    assert "3 cached, 5 to ask" in out and "finished: 8 verdicts" in out
    reviewer_requests = [
        r for r in chat_requests(fake) if "BEGIN TOOL UNDER REVIEW" in r.body["messages"][1]["content"]
    ]
    assert len(reviewer_requests) == 8
    assert query(db, f"SELECT count(*), count(DISTINCT cache_key) {REVIEWS}") == [(8, 8)]


def _hold_read_only(db: Path) -> duckdb.DuckDBPyConnection:
    """What a long `panel sql` query does to a writer: a read-only connection from another process, held open."""
    return connect(db, read_only=True)


def test_a_reader_holding_the_database_all_run_long_loses_no_answer(slow_fake: str, tmp_path: Path) -> None:
    run_file, db = write_synthetic_run(tmp_path, pairs=5), tmp_path / "panel.duckdb"  # 40 verdicts, 5 summaries
    run = start_review(run_file, slow_fake, db, "--concurrency", "4")
    read_until(run, lambda lines: any("to ask" in line for line in lines))
    held = _hold_read_only(db)  # from here the review cannot open the file read-write until we let go
    # Held through the reviewers, the chair and the render: the old writer waited 60 s, then lost the answers.
    deadline = time.monotonic() + 75
    lines = read_until(
        run, lambda lines: sum(line.startswith("page: ") for line in lines) == 5 or time.monotonic() > deadline
    )
    stored_while_held = held.execute("SELECT count(*) FROM verdicts").fetchall()[0][0]
    held.close()
    out, err = run.communicate(timeout=60)
    output = "".join(lines) + out
    assert run.returncode == 0, output + err
    assert stored_while_held == 0  # so everything below went through the journal
    assert "finished: 40 verdicts, 0 cached, 40 asked, 0 failed" in output
    assert "Traceback" not in err
    assert query(db, f"SELECT count(*), count(DISTINCT cache_key), bool_and(valid) {REVIEWS}") == [(40, 40, True)]
    assert query(
        db, "SELECT count(*), count(DISTINCT cache_key), bool_and(valid) FROM verdicts WHERE persona_id = 'chair'"
    ) == [(5, 5, True)]
    assert query(db, "SELECT count(*) FROM attempts") == [(45,)]
    assert query(db, "SELECT status FROM runs") == [("finished",)]
    assert (tmp_path / "panel.duckdb.journal.jsonl").stat().st_size == 0
    # The pages were rendered while the file was held, from the journal: every reviewer and the chair are on them.
    pages = sorted((tmp_path / "pages").glob("*/*.md"))
    assert len(pages) == 5
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert "Written by the panel chair" in text and text.count(" of 4** reviewers say ship") == 2


def test_killed_run_under_a_reader_resumes_from_its_journal_with_every_verdict_once(
    slow_fake: str, tmp_path: Path
) -> None:
    run_file, db = write_synthetic_run(tmp_path, pairs=10), tmp_path / "panel.duckdb"  # 80 verdicts
    first = start_review(run_file, slow_fake, db, "--concurrency", "4")
    read_until(first, lambda lines: any("to ask" in line for line in lines))
    held = _hold_read_only(db)
    answered = read_until(first, lambda lines: sum(" on Synthetic Tool" in line for line in lines) >= 40)
    time.sleep(3 * BATCH_INTERVAL_S)  # what has been printed reaches the journal: a batch, then a fold try
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    assert first.returncode == -signal.SIGKILL, "the run ended before it could be killed: " + "".join(answered)
    assert held.execute("SELECT count(*) FROM verdicts").fetchall() == [(0,)]  # nothing reached the database
    held.close()

    resumed = start_review(run_file, slow_fake, db, "--concurrency", "4")
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    cached = int(out.split(" cached, ")[0].rsplit("\n", 1)[-1])
    assert cached >= 40, out  # the journal's answers count as stored: the rerun does not pay for them again
    assert f"{cached} cached, {80 - cached} to ask" in out and "finished: 80 verdicts" in out
    assert query(db, f"SELECT count(*), count(DISTINCT cache_key), bool_and(valid) {REVIEWS}") == [(80, 80, True)]
    assert query(db, f"SELECT count(*) FROM attempts WHERE verdict_id IN (SELECT verdict_id {REVIEWS})") == [(80,)]
    assert query(db, "SELECT status FROM runs") == [("finished",)]
