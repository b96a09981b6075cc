"""The run journal: answers a reader keeps from the database wait in it, are read through it, and fold exactly once."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from panel.config import Settings
from panel.model.endpoint import Endpoint
from panel.pipeline import draft_run
from panel.review import prepare_run, review
from panel.store import LOCK_RETRY_S, Store
from panel.tally import CHAIR_ID
from tests.fake_openai import FakeOpenAI
from tests.helpers import EXAMPLE_RUN

HOLDER = (
    "import duckdb, sys\n"
    "con = duckdb.connect(sys.argv[1], read_only=True)\n"
    "print('HOLDING', flush=True)\n"
    "sys.stdin.readline()\n"
)


@pytest.fixture
def store(settings: Settings) -> Store:
    """A fresh database at the current schema."""
    return Store(settings.db_path)


@pytest.fixture
def held(store: Store) -> Iterator[subprocess.Popen]:
    """Another process holding a read-only connection (as a long `panel sql` query does) until the test ends."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(store.path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout and holder.stdout.readline().strip() == "HOLDING"
    yield holder
    release(holder)


def release(holder: subprocess.Popen) -> None:
    """Let the holding process close its connection and exit."""
    if holder.poll() is None:
        holder.communicate("\n", timeout=30)


def rows(path: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql).fetchall()


def review_and_summarize(fake: FakeOpenAI, settings: Settings, store: Store) -> str:
    """Draft the example run into `store`'s database (no page); with a reader holding it, nothing waits for it."""
    settings = settings.with_overrides(base_url=fake.base_url, model="fake-model", db_path=store.path)
    draft = draft_run(EXAMPLE_RUN, settings, render=False, settle_wait_s=0)
    assert draft.status == "finished" and draft.asked == 8
    assert (draft.chair.needed, len(draft.chair.answers), draft.chair.failed) == (1, 1, 0)
    return draft.run_id


def test_run_under_a_reader_is_journaled_read_back_and_folded_once_the_reader_leaves(
    fake: FakeOpenAI, settings: Settings, store: Store, held: subprocess.Popen
) -> None:
    run_id = review_and_summarize(fake, settings, store)
    # The review, the chair and this process's reads saw every answer though none reached the database yet.
    assert store.journal.pending()
    run = store.load_run(run_id)
    assert run.status == "finished" and len(run.verdicts) == 9
    assert run.verdicts[(0, run.tool_ids[0][0], CHAIR_ID)].headline
    assert not store.fold_journal(wait_s=0.2)  # still held

    release(held)
    assert store.fold_journal(wait_s=5) and store.journal.pending() == []
    assert rows(store.path, "SELECT count(*), count(DISTINCT cache_key), bool_and(valid) FROM verdicts") == [
        (9, 9, True)
    ]
    assert rows(store.path, "SELECT status FROM runs") == [("finished",)]
    assert rows(store.path, "SELECT count(*) FROM run_items") == [(9,)]


def test_rerun_under_a_reader_asks_nothing_already_journaled(
    fake: FakeOpenAI, settings: Settings, store: Store, held: subprocess.Popen
) -> None:
    run_id = review_and_summarize(fake, settings, store)
    asked = len(fake.requests)
    again = review(
        prepare_run(EXAMPLE_RUN, settings.with_overrides(base_url=fake.base_url, model="fake-model")),
        settings.with_overrides(base_url=fake.base_url, model="fake-model"),
        store,
        endpoint=Endpoint(fake.base_url, embedded=False),
    )
    assert (again.run_id, again.cached, again.asked) == (run_id, 8, 0) and len(fake.requests) == asked


def test_folding_again_after_a_crash_before_the_journal_was_emptied_adds_nothing(
    fake: FakeOpenAI, settings: Settings, store: Store, held: subprocess.Popen
) -> None:
    review_and_summarize(fake, settings, store)
    journaled = store.journal.path.read_bytes()
    release(held)
    assert store.fold_journal(wait_s=5)
    store.journal.path.write_bytes(journaled)  # as if killed between the commit and the truncation

    Store(store.path)  # the next panel command that opens the database folds what it finds
    assert store.journal.path.stat().st_size == 0
    assert rows(store.path, "SELECT count(*), count(DISTINCT cache_key) FROM verdicts") == [(9, 9)]
    assert rows(store.path, "SELECT count(*) FROM attempts") == [(9,)]
    assert rows(store.path, "SELECT count(*) FROM journal_folds") == [(len(journaled.splitlines()),)]


def test_a_torn_last_line_is_skipped_and_the_records_after_it_fold(
    fake: FakeOpenAI, settings: Settings, store: Store, held: subprocess.Popen
) -> None:
    with store.journal.path.open("ab") as journal:
        journal.write(b'{"id": "cut short by a crash", "kind": "answ')  # an append kill -9 interrupted
    review_and_summarize(fake, settings, store)
    release(held)
    assert store.fold_journal(wait_s=5)
    assert rows(store.path, "SELECT count(*) FROM verdicts") == [(9,)]
    assert rows(store.path, "SELECT status FROM runs") == [("finished",)]


def test_a_review_opens_and_runs_while_a_reader_already_holds_the_database(
    fake: FakeOpenAI, settings: Settings, store: Store, held: subprocess.Popen
) -> None:
    started = time.monotonic()
    opened = Store(store.path)  # what `panel review` does first, here during an analyst's long query
    assert time.monotonic() - started < LOCK_RETRY_S / 2  # it does not wait the query out, nor give up
    review_and_summarize(fake, settings, opened)
    release(held)
    assert opened.fold_journal(wait_s=5)
    assert rows(store.path, "SELECT count(*) FROM verdicts") == [(9,)]
