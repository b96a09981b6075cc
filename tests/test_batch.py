"""Batch mode against the fake's Batch API, through the real SDK: submit, wait, collect once, re-ask, chair, pages;
expired and cancelled batches; `panel batch` commands; export to and import from an offline engine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from panel.batch.draft import BatchProgress, batch_draft
from panel.batch.offline import export_run, import_results
from panel.config import Settings
from panel.pipeline import draft_run
from panel.store import Store
from tests.fake_openai import FakeOpenAI
from tests.helpers import EXAMPLE_RUN, chat_requests, run_panel

PRICES = {"price_input": 0.15, "price_output": 0.60}


@pytest.fixture
def batch_settings(settings: Settings, fake: FakeOpenAI) -> Settings:
    """Settings pointing at the fake, with live prices (the batch price is then half)."""
    return settings.with_overrides(base_url=fake.base_url, model="fake-model", **PRICES)


def _uploaded_lines(fake: FakeOpenAI, batch_number: int) -> list[dict]:
    batch = list(fake.batch_api.batches.values())[batch_number]
    return [json.loads(line) for line in fake.batch_api.files[batch.input_file_id][0].splitlines()]


def _verdict_counts(store: Store) -> dict[str, int]:
    with store.reader() as con:
        return dict(con.execute("SELECT cache_key, count(*) FROM verdicts GROUP BY cache_key").fetchall())


def test_batch_with_wait_stores_every_verdict_and_the_chair_and_renders(fake: FakeOpenAI, batch_settings: Settings):
    draft = batch_draft(EXAMPLE_RUN, batch_settings, wait=True, poll_s=0.01)
    assert draft.status == "finished" and draft.pages and draft.pages[0].exists()
    assert (draft.reviewers.answered, draft.chair.answered) == (8, 1)
    assert [b.purpose for b in draft.submitted] == ["review", "chair"]
    assert chat_requests(fake) == []  # nothing went live
    # The lines' tokens cost half the live price.
    assert draft.cost.prices.input == 0.075 and draft.cost.usd == pytest.approx(
        (draft.cost.prompt_tokens * 0.075 + draft.cost.completion_tokens * 0.30) / 1e6
    )
    with draft.store.reader() as con:
        assert con.execute("SELECT DISTINCT price_input FROM attempts").fetchall() == [(0.075,)]


def test_batch_lines_carry_exactly_the_live_request_body_under_the_cache_key(fake: FakeOpenAI, settings: Settings):
    batch_settings = settings.with_overrides(base_url=fake.base_url, model="fake-model")
    batch_draft(EXAMPLE_RUN, batch_settings, poll_s=0.01)
    lines = _uploaded_lines(fake, 0)
    live = draft_run(
        EXAMPLE_RUN, batch_settings.with_overrides(db_path=settings.db_path.with_name("live.duckdb")), chair=False
    )
    sent = [r.body for r in chat_requests(fake)]
    assert {line["custom_id"] for line in lines} == {job.cache_key for job in live.prepared.jobs}
    by_key = {job.cache_key: job for job in live.prepared.jobs}
    for line in lines:
        assert line["method"] == "POST" and line["url"] == "/v1/chat/completions"
        assert line["body"]["messages"] == by_key[line["custom_id"]].messages
        assert line["body"] in sent  # mode, schema, sampling and model included
    assert lines[0]["body"]["response_format"]["type"] == "json_schema"


def test_a_second_collect_stores_nothing_and_submits_nothing(fake: FakeOpenAI, batch_settings: Settings):
    first = batch_draft(EXAMPLE_RUN, batch_settings, wait=True, poll_s=0.01)
    counts = _verdict_counts(first.store)
    again = batch_draft(EXAMPLE_RUN, batch_settings, wait=True, poll_s=0.01)
    assert again.status == "finished" and again.submitted == [] and again.collected == []
    assert _verdict_counts(again.store) == counts and set(counts.values()) == {1}
    assert len(fake.batch_api.batches) == 2
    collected = run_panel("batch", "collect", "--base-url", fake.base_url, "--db", str(batch_settings.db_path))
    assert collected.returncode == 0, collected.stderr
    assert _verdict_counts(first.store) == counts


def test_without_wait_the_command_prints_the_batch_and_a_rerun_collects(fake: FakeOpenAI, tmp_path: Path):
    args = ["review", str(EXAMPLE_RUN), "--batch", "--base-url", fake.base_url, "--model", "fake-model"]
    args += ["--out", str(tmp_path / "pages")]
    first = run_panel(*args)
    assert first.returncode == 0, first.stderr
    assert "batch batch_fake0001 submitted: 8 requests" in first.stdout
    assert "rerun `panel review" in first.stdout and "--batch` to collect" in first.stdout
    for _ in range(10):  # each rerun polls the fake once, which moves its batches a step
        rerun = run_panel(*args)
        assert rerun.returncode == 0, rerun.stderr
        if "page: " in rerun.stdout:
            break
    assert "(finished): 8 of 8 verdicts stored, chair 1 of 1" in rerun.stdout
    listed = run_panel("batch", "list")
    assert listed.returncode == 0 and "batch_fake0001" in listed.stdout and "batch_fake0002" in listed.stdout


def test_invalid_and_error_lines_are_reasked_in_a_follow_up_batch(fake: FakeOpenAI, batch_settings: Settings):
    keys = sorted(job.cache_key for job in batch_draft(EXAMPLE_RUN, batch_settings, poll_s=0.01).prepared.jobs)
    faults = {keys[0]: "schema_violation", keys[1]: "error", keys[2]: "truncated_json"}
    fake.batch_api.line_faults = lambda custom_id, seen: faults.get(custom_id) if seen == 0 else None
    draft = batch_draft(EXAMPLE_RUN, batch_settings, wait=True, poll_s=0.01)
    assert draft.status == "finished"
    follow_up = {line["custom_id"]: line for line in _uploaded_lines(fake, 1)}
    assert set(follow_up) == set(faults)
    invalid = follow_up[keys[0]]["body"]["messages"]
    assert invalid[-2]["role"] == "assistant" and "did not match the schema" in invalid[-1]["content"]
    assert follow_up[keys[1]]["body"]["messages"][-1]["role"] == "user"  # an error is sent again as it was
    with draft.store.reader() as con:
        rows = con.execute(
            "SELECT v.cache_key, v.generation, v.valid, a.number, a.status FROM verdicts v "
            "JOIN attempts a USING (verdict_id) WHERE v.cache_key IN (SELECT unnest(?)) ORDER BY 1, 2",
            [list(faults)],
        ).fetchall()
    assert {(key, gen, valid, number) for key, gen, valid, number, _ in rows} == {
        (key, gen, gen == 2, gen) for key in faults for gen in (1, 2)
    }
    assert {status for *_, status in rows} == {"invalid", "api_error", "ok"}


def test_lines_that_fail_every_try_leave_the_run_incomplete(fake: FakeOpenAI, batch_settings: Settings):
    settings = batch_settings.with_overrides(reasks=1)
    fake.batch_api.line_faults = lambda custom_id, seen: "schema_violation"
    draft = batch_draft(EXAMPLE_RUN, settings, wait=True, poll_s=0.01)
    assert draft.status == "incomplete" and draft.reviewers.exhausted == 8
    assert len(fake.batch_api.batches) == 2  # the first try and one re-ask, then it stops
    assert draft.pages == []  # no valid verdict: no chair, no page (as live)


def test_then_live_asks_only_the_failed_lines_live(fake: FakeOpenAI, batch_settings: Settings):
    keys = sorted(job.cache_key for job in batch_draft(EXAMPLE_RUN, batch_settings, poll_s=0.01).prepared.jobs)
    fake.batch_api.line_faults = lambda custom_id, seen: "error" if custom_id in keys[:2] else None
    draft = batch_draft(EXAMPLE_RUN, batch_settings, wait=True, then_live=True, poll_s=0.01)
    assert draft.go_live and draft.reviewers.to_ask_live == 2
    live = draft_run(EXAMPLE_RUN, batch_settings)
    assert live.asked == 2 and live.complete and live.pages
    asked = [r.body for r in chat_requests(fake)]
    assert len(asked) == 3  # the two failed verdicts, then the chair
    assert len(fake.batch_api.batches) == 1


def test_an_expired_batch_keeps_its_half_and_the_rest_goes_in_the_next(fake: FakeOpenAI, batch_settings: Settings):
    fake.batch_api.ends = ["expired"]
    draft = batch_draft(EXAMPLE_RUN, batch_settings, wait=True, poll_s=0.01)
    assert draft.status == "finished"
    first, second = _uploaded_lines(fake, 0), _uploaded_lines(fake, 1)
    assert len(first) == 8 and len(second) == 4
    assert {line["custom_id"] for line in second} == {line["custom_id"] for line in first[4:]}
    assert set(_verdict_counts(draft.store).values()) == {1}


def test_a_cancelled_batch_keeps_what_finished(fake: FakeOpenAI, batch_settings: Settings):
    draft = batch_draft(EXAMPLE_RUN, batch_settings, poll_s=0.01)
    name = draft.in_flight[0].name
    db = ["--base-url", fake.base_url, "--db", str(batch_settings.db_path)]
    for _ in range(2):  # validating -> in_progress -> half done
        assert run_panel("batch", "status", name, *db).returncode == 0
    cancelled = run_panel("batch", "cancel", name, *db)
    assert cancelled.returncode == 0 and "cancelling" in cancelled.stdout
    again = batch_draft(EXAMPLE_RUN, batch_settings, poll_s=0.01)
    assert again.collected[0].stored == 4 and again.collected[0].missing == 4
    assert len(_uploaded_lines(fake, 1)) == 4
    assert run_panel("batch", "cancel", name, *db).returncode == 2  # it has ended: one line, no traceback


def test_malformed_missing_and_duplicate_lines_are_counted_and_asked_again(fake: FakeOpenAI, batch_settings: Settings):
    keys = sorted(job.cache_key for job in batch_draft(EXAMPLE_RUN, batch_settings, poll_s=0.01).prepared.jobs)
    faults = {keys[0]: "malformed", keys[1]: "missing", keys[2]: "duplicate"}
    fake.batch_api.line_faults = lambda custom_id, seen: faults.get(custom_id) if seen == 0 else None
    notes: list[str] = []

    class Notes(BatchProgress):
        def notice(self, line: str) -> None:
            notes.append(line)

    draft = batch_draft(EXAMPLE_RUN, batch_settings, wait=True, progress=Notes(), poll_s=0.01)
    first = draft.collected[0]
    assert (first.counts.malformed, first.missing, first.already, first.stored) == (1, 2, 1, 6)
    assert "1 malformed lines" in notes[0] and "2 missing" in notes[0]
    assert {line["custom_id"] for line in _uploaded_lines(fake, 1)} == {keys[0], keys[1]}
    assert draft.status == "finished" and set(_verdict_counts(draft.store).values()) == {1}


def test_batch_mode_needs_an_endpoint_with_the_batch_api(tmp_path: Path):
    result = run_panel("review", str(EXAMPLE_RUN), "--batch", "--out", str(tmp_path))
    assert result.returncode == 2 and "error: --batch needs an endpoint with the Batch API" in result.stderr
    assert "Traceback" not in result.stderr


def test_export_then_import_round_trip_counts_every_odd_line(
    fake: FakeOpenAI, batch_settings: Settings, tmp_path: Path
):
    requests = tmp_path / "requests.jsonl"
    batch, cached = export_run(EXAMPLE_RUN, batch_settings, requests)
    assert batch is not None and batch.request_count == 8 and cached == 0
    lines = [json.loads(line) for line in requests.read_text(encoding="utf-8").splitlines()]
    # What vLLM's run_batch writes: one result per request (here the fake's answers), in any order.
    results = [
        json.dumps(
            {
                "id": f"vllm-{i}",
                "custom_id": line["custom_id"],
                "response": {"status_code": 200, "body": fake.batch_reply(i, line["body"])},
                "error": None,
            }
        )
        for i, line in enumerate(lines)
    ]
    odd = results[:6] + [
        results[0],
        results[6][: len(results[6]) // 2],
        results[1].replace(lines[1]["custom_id"], "nope"),
    ]
    path = tmp_path / "results.jsonl"
    path.write_text("\n".join(odd) + "\n", encoding="utf-8")
    outcome = import_results(path, batch_settings)
    assert (outcome.stored, outcome.already, outcome.counts.malformed, outcome.counts.unknown) == (6, 1, 1, 1)
    assert outcome.missing == 2
    again = import_results(path, batch_settings)
    assert again.stored == 0 and again.already == 7
    rest, cached = export_run(EXAMPLE_RUN, batch_settings, tmp_path / "rest.jsonl")
    assert rest is not None and rest.request_count == 2 and cached == 6
    cli = run_panel("batch", "import", str(path), "--db", str(batch_settings.db_path))
    assert cli.returncode == 0 and "0 stored" in cli.stdout
    assert chat_requests(fake) == [] and fake.batch_api.batches == {}
