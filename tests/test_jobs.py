"""Background jobs for the desk: one at a time, progress verdict by verdict, the writer lock taken and given back,
a failure as its one-line reason."""

from __future__ import annotations

from pathlib import Path

from panel.ask_again import AskAgainRequest
from panel.config import Settings
from panel.jobs import FAILED, FINISHED, QUEUED, RUNNING, JobRunner, JobStatus
from panel.pair_form import add_pair
from panel.store import Store
from tests.fake_openai import FAULT_401, FakeOpenAI
from tests.helpers import GOOD_CARD, chat_requests, reference_reviewers, writer_lock_held_elsewhere


def pair_fields() -> dict[str, str]:
    """The desk's form for a pair whose left tool's name carries HTML."""
    fields: dict[str, str] = {}
    for side, name in (("left", "Acme <b>Vector</b>"), ("right", "Other")):
        fields |= {f"{side}.{k}": v for k, v in GOOD_CARD.items() if isinstance(v, str)} | {f"{side}.name": name}
        fields |= {f"{side}.pricing.entry": "Free", f"{side}.pricing.details": "Free."}
    return fields


def progress(updates: list[JobStatus], job_id: str) -> list[tuple[str, int, int | None]]:
    """The job's (state, landed, total) as it changed, repeats dropped."""
    seen: list[tuple[str, int, int | None]] = []
    for status in updates:
        step = (status.state, status.landed, status.total)
        if status.job_id == job_id and (not seen or seen[-1] != step):
            seen.append(step)
    return seen


def test_a_draft_from_the_form_goes_queued_then_running_verdict_by_verdict_then_finished(
    settings: Settings, tmp_path: Path
) -> None:
    run_file = add_pair(pair_fields(), tmp_path / "runs")
    updates: list[JobStatus] = []
    with FakeOpenAI(responder=reference_reviewers(), latency=0.02) as server:
        settings = settings.with_overrides(base_url=server.base_url, model="fake-model")
        with JobRunner(on_update=updates.append) as runner:
            first = runner.draft(run_file, settings)
            second = runner.ask_again(
                "not-yet", AskAgainRequest("skeptic", "ed", "Other", note="x"), settings
            )  # queued behind the draft, whose run id it cannot know: it fails, the runner goes on
            done = runner.wait(first, 60)
            assert runner.wait(second, 60).state == FAILED
    assert progress(updates, first) == [
        (QUEUED, 0, None),
        (RUNNING, 0, None),
        *[(RUNNING, landed, 8) for landed in range(9)],
        (FINISHED, 8, 8),
    ]
    waited = runner.status(second)
    assert waited.started_at is not None and done.ended_at is not None
    assert waited.submitted_at < done.started_at and waited.started_at >= done.ended_at  # one job at a time
    assert waited.failure == f"{settings.db_path}: no run 'not-yet'"
    assert done.failure is None and done.result is not None and done.run_id
    page = done.result.pages[0].read_text(encoding="utf-8")  # type: ignore[union-attr]
    assert "Acme &lt;b&gt;Vector&lt;/b&gt;" in page and "<b>Vector" not in page
    assert len(chat_requests(server)) == 9  # eight verdicts and the chair
    with Store(settings.db_path).writing():  # the job gave the writer lock back
        pass


def test_an_ask_again_job_lands_one_answer_and_a_locked_database_fails_it_in_one_line(
    settings: Settings, tmp_path: Path
) -> None:
    run_file = add_pair(pair_fields(), tmp_path / "runs")
    with FakeOpenAI(responder=reference_reviewers()) as server:
        settings = settings.with_overrides(base_url=server.base_url, model="fake-model")
        with JobRunner() as runner:
            run_id = runner.wait(runner.draft(run_file, settings), 60).run_id
            assert run_id is not None
            request = AskAgainRequest("skeptic", "ed", "Other", note="Shorter.")
            with writer_lock_held_elsewhere(settings.db_path):
                refused = runner.wait(runner.ask_again(run_id, request, settings), 60)
            asked = runner.wait(runner.ask_again(run_id, request, settings), 60)
    assert refused.state == FAILED and refused.failure is not None and "\n" not in refused.failure
    assert "another panel run is writing this database" in refused.failure
    assert (asked.state, asked.landed, asked.total, asked.failure) == (FINISHED, 1, 1, None)
    assert asked.result is not None and asked.result.version == 1  # type: ignore[union-attr]


def test_a_draft_the_endpoint_refuses_fails_with_what_to_fix_and_keeps_its_outcome(
    settings: Settings, tmp_path: Path
) -> None:
    run_file = add_pair(pair_fields(), tmp_path / "runs")
    with FakeOpenAI(faults=[FAULT_401] * 20) as server:
        settings = settings.with_overrides(base_url=server.base_url, model="fake-model")
        with JobRunner() as runner:
            status = runner.wait(runner.draft(run_file, settings), 60)
        assert len(chat_requests(server)) == 1
    assert status.state == FAILED and status.failure is not None and "HTTP 401" in status.failure
    assert status.result is not None and status.result.status == "stopped"  # type: ignore[union-attr]
