"""A run that did not finish says so: missing reviewers on the page, the chair's fate in the CLI, failed writes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import duckdb
import pytest

from panel.cli import main
from panel.config import Settings
from panel.errors import StoreError
from panel.model.endpoint import Endpoint
from panel.render import render_html, render_markdown
from panel.review import prepare_run, review
from panel.store import Store
from panel.tally import CHAIR_ID, tally_run
from tests.fake_openai import FakeOpenAI, chair_responder, load_reference_labels, reference_responder
from tests.helpers import EXAMPLE_RUN, reference_labels_path, review_against

STOPPED_BANNER = "This run stopped before every reviewer answered"


def _review(server: FakeOpenAI, settings: Settings, run_file: Path = EXAMPLE_RUN, **overrides: Any):
    return review_against(server, settings, run_file, **overrides)


def _rows(store: Store, sql: str) -> list[tuple]:
    with duckdb.connect(str(store.path), read_only=True) as con:
        return con.execute(sql).fetchall()


def _cli_review(fake: FakeOpenAI, tmp_path: Path, *flags: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exited:
        main(
            [
                "review",
                str(EXAMPLE_RUN),
                "--base-url",
                fake.base_url,
                "--db",
                str(tmp_path / "panel.duckdb"),
                "--out",
                str(tmp_path / "pages"),
                *flags,
            ]
        )
    captured = capsys.readouterr()
    return exited.value.code, captured.out + captured.err


def test_stopped_run_page_lists_every_reviewer_and_says_how_to_finish(
    fake: FakeOpenAI, settings: Settings, tmp_path: Path
) -> None:
    # A run file whose path is hostile text: the banner names it, escaped like any other text.
    folder = tmp_path / "<b>runs_*x*"
    shutil.copytree(EXAMPLE_RUN.parent, folder)
    run_file = folder / EXAMPLE_RUN.name
    store, outcome = _review(fake, settings, run_file, concurrency=1, max_requests=3)
    assert outcome.status == "stopped" and outcome.asked == 3

    tally = tally_run(store.load_run(outcome.run_id))
    assert sorted(tally.personas) == ["builder", "business", "futurist", "skeptic"]
    assert CHAIR_ID not in tally.personas
    answered = sum(len(side.ship) + len(side.skip) for side in tally.pairs[0].tools)
    missing = sum(len(side.missing) for side in tally.pairs[0].tools)
    assert (answered, missing) == (3, 5)

    html = render_html(tally, tally.pairs[0])
    assert STOPPED_BANNER in html and "&lt;b&gt;runs_*x*" in html and "<b>runs" not in html
    markdown = render_markdown(tally, tally.pairs[0])
    assert STOPPED_BANNER in markdown and r"\<b\>runs\_\*x\*" in markdown


def test_finished_run_page_has_no_stopped_banner(fake: FakeOpenAI, settings: Settings) -> None:
    store, outcome = _review(fake, settings)
    tally = tally_run(store.load_run(outcome.run_id))
    assert outcome.status == "finished" and len(tally.personas) == 4
    assert STOPPED_BANNER not in render_html(tally, tally.pairs[0])
    assert STOPPED_BANNER not in render_markdown(tally, tally.pairs[0])


def test_chair_refused_by_the_budget_is_reported_and_exits_3(
    fake: FakeOpenAI, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # More than the first verdict (asked alone, ~970 tokens) spends, less than all eight: the reviewers finish.
    code, output = _cli_review(fake, tmp_path, "--token-budget", "2000", capsys=capsys)
    assert code == 3
    assert "chair: 1 pair summary not asked, token budget of 2000 reached" in output
    assert "rerun the same command" in output and "Traceback" not in output
    # The rerun reuses every verdict, so the chair fits in the budget and the run ends cleanly.
    with pytest.raises(SystemExit) as rerun:
        main(
            [
                "review",
                str(EXAMPLE_RUN),
                "--base-url",
                fake.base_url,
                "--db",
                str(tmp_path / "panel.duckdb"),
                "--out",
                str(tmp_path / "pages"),
                "--token-budget",
                "2000",
            ]
        )
    assert rerun.value.code in (0, None)


def test_chair_answer_that_never_validates_is_reported_and_exits_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reviewers = reference_responder(load_reference_labels(reference_labels_path()))
    with_chair = chair_responder(reviewers)

    def broken_chair(body: dict[str, Any]) -> str:
        answer = with_chair(body)
        return json.dumps({"pick": "maybe"}) if "pick" in answer else answer

    with FakeOpenAI(responder=broken_chair) as server:
        code, output = _cli_review(server, tmp_path, capsys=capsys)
    assert code == 3
    assert "chair: 1 pair summary got no valid answer" in output and "Traceback" not in output


class _StoreThatFailsMidRun(Store):
    """A Store whose answer write commits one answer, then fails with `error` (what a broken disk or bug does)."""

    def __init__(self, path: Path, error: Exception) -> None:
        super().__init__(path)
        self.error = error

    def save_answers(self, run_id: str, answers: list, settings: Settings, **options: Any) -> list[int]:
        super().save_answers(run_id, answers[:1], settings, **options)
        raise self.error


@pytest.mark.parametrize("error", [RuntimeError("disk on fire"), StoreError("panel.duckdb: database is locked")])
def test_failed_answer_write_stops_the_run_and_review_raises(
    fake: FakeOpenAI, settings: Settings, error: Exception
) -> None:
    settings = settings.with_overrides(base_url=fake.base_url, model="fake-model", concurrency=1)
    store = _StoreThatFailsMidRun(settings.db_path, error)
    prepared = prepare_run(EXAMPLE_RUN, settings)
    with pytest.raises(StoreError) as raised:
        review(prepared, settings, store, endpoint=Endpoint(fake.base_url, embedded=False))
    assert str(error) in str(raised.value)
    assert _rows(store, "SELECT status FROM runs") == [("stopped",)]
    assert _rows(store, "SELECT count(*) FROM verdicts") == [(1,)]  # the committed batch stays
