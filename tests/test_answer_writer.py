"""AnswerWriter: every batch reaches the journal at once; DuckDB gets the journal every so often and at the end."""

from __future__ import annotations

import time
from pathlib import Path

import duckdb

from panel.config import Settings
from panel.pipeline import draft_run
from panel.store import AnswerWriter
from tests.fake_openai import FakeOpenAI
from tests.helpers import write_synthetic_run


def stored_verdicts(path: Path) -> int:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute("SELECT count(*) FROM verdicts").fetchall()[0][0]


def wait_until(condition, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_mid_run_batches_are_journaled_at_once_and_folded_at_the_interval_and_at_the_end(
    fake: FakeOpenAI, settings: Settings, tmp_path: Path
) -> None:
    draft = draft_run(
        write_synthetic_run(tmp_path, pairs=30),
        settings.with_overrides(base_url=fake.base_url, model="fake-model", concurrency=16),
        chair=False,
        render=False,
    )
    answers, store = draft.review.answers, draft.store
    assert len(answers) == 240
    store.acquire_writer()
    try:
        with AnswerWriter(
            store,
            draft.run_id,
            draft.settings,
            expected=len(answers),
            batch_size=32,
            interval_s=0.05,
            fold_interval_s=60,
        ) as writer:
            before = stored_verdicts(store.path)
            for answer in answers[:64]:  # two full batches, far from the end of the run
                writer.submit(answer)
            wait_until(lambda: writer.journaled == 64)
            assert len(store.journal.pending()) == 2  # durable in the journal...
            assert stored_verdicts(store.path) == before  # ...and not folded yet: the interval is not up
            for answer in answers[64:]:
                writer.submit(answer)
            writer.finish("finished")
        assert store.journal.pending() == [] and stored_verdicts(store.path) == before + 240
    finally:
        store.release_writer()
