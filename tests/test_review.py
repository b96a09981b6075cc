"""A full run against the loopback fake endpoint: verdicts stored, re-asks counted, page rendered."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb

from panel.config import Settings
from panel.model.endpoint import Endpoint
from panel.render import write_pages
from panel.review import prepare_run, review
from panel.store import Store
from panel.tally import tally_run
from tests.fake_openai import FakeOpenAI, scripted_responder
from tests.helpers import EXAMPLE_RUN, chat_requests, review_against

VALID = json.dumps(
    {
        "verdict": "ship",
        "confidence": 0.8,
        "headline": "Solid primitive",
        "review": "A clear primitive with a short path from first call to production use.",
        "key_points": ["clear primitive"],
    }
)


def run_example(server: FakeOpenAI, settings: Settings, refresh: bool = False):
    store, outcome = review_against(server, settings, refresh=refresh)
    return store, outcome, settings.with_overrides(base_url=server.base_url, model="fake-model")


def test_full_run_stores_eight_verdicts_and_renders_75_percent(fake: FakeOpenAI, settings: Settings) -> None:
    store, outcome, settings = run_example(fake, settings)
    assert (outcome.needed, outcome.asked, outcome.failed, outcome.status) == (8, 8, 0, "finished")
    with duckdb.connect(str(store.path), read_only=True) as con:
        rows = con.execute("SELECT persona_id, verdict, valid, attempt_count FROM verdicts").fetchall()
    assert len(rows) == 8 and all(valid and attempts == 1 for _, _, valid, attempts in rows)
    assert sorted(v for _, v, _, _ in rows) == ["ship"] * 6 + ["skip"] * 2
    tally = tally_run(store.load_run(outcome.run_id))
    assert [side.ship_percent for side in tally.pairs[0].tools] == ["75%", "75%"]
    html = write_pages(tally, settings.out_dir)[0].read_text()
    assert html.count("75%") == 2 and "Reviewer scorecard" in html
    assert "SmolVLM2-2B vs Perplexity Sonar Pro 2 API" in html


def test_invalid_answer_is_reasked_with_the_validation_error_and_counted(settings: Settings) -> None:
    answers = ['{"verdict": "maybe", "confidence": 7}', "not json at all", VALID]
    with FakeOpenAI(responder=scripted_responder(answers)) as server:
        settings = settings.with_overrides(concurrency=1)
        store, outcome, _ = run_example(server, settings)
        first_job_requests = chat_requests(server)[:3]
    assert outcome.failed == 0
    first = outcome.answers[0]
    assert [a.status for a in first.attempts] == ["invalid", "invalid", "ok"]
    reask = first_job_requests[1].body["messages"]
    assert reask[-2]["role"] == "assistant" and reask[-2]["content"] == answers[0]
    assert "verdict" in reask[-1]["content"] and "less than or equal to 1" in reask[-1]["content"]
    # Each re-ask samples afresh (seed + n), or a small model may repeat the invalid answer word for word.
    assert [r.body["seed"] for r in first_job_requests] == [settings.seed, settings.seed + 1, settings.seed + 2]
    with duckdb.connect(str(store.path), read_only=True) as con:
        counts = con.execute("""SELECT v.attempt_count, count(a.attempt_id) FROM verdicts v
                                JOIN attempts a USING (verdict_id) WHERE v.attempt_count = 3
                                GROUP BY ALL""").fetchall()
    assert counts == [(3, 3)]


def test_answer_that_never_validates_is_stored_as_failed_not_as_a_verdict(settings: Settings) -> None:
    with FakeOpenAI(responder=scripted_responder(['{"verdict": "ship"}'])) as server:
        store, outcome, _ = run_example(server, settings.with_overrides(reasks=2))
        assert len(chat_requests(server)) == 8 * 3
    assert outcome.failed == 8 and outcome.status == "incomplete"
    tally = tally_run(store.load_run(outcome.run_id))
    assert [side.ship_percent for side in tally.pairs[0].tools] == ["—", "—"]


def test_rerun_of_finished_run_makes_no_model_calls(fake: FakeOpenAI, settings: Settings) -> None:
    run_example(fake, settings)
    before = len(chat_requests(fake))
    _, outcome, _ = run_example(fake, settings)
    assert len(chat_requests(fake)) == before == 8
    assert (outcome.cached, outcome.asked) == (8, 0)


def test_refresh_asks_again_and_keeps_the_old_verdicts(fake: FakeOpenAI, settings: Settings) -> None:
    store, first, _ = run_example(fake, settings)
    run_example(fake, settings, refresh=True)
    with duckdb.connect(str(store.path), read_only=True) as con:
        generations = con.execute("SELECT generation, count(*) FROM verdicts GROUP BY 1 ORDER BY 1").fetchall()
    assert generations == [(1, 8), (2, 8)]


def test_second_run_in_the_same_database_keeps_the_first(fake: FakeOpenAI, settings: Settings, tmp_path: Path) -> None:
    store, first, _ = run_example(fake, settings)
    other = settings.with_overrides(temperature=0.9)
    _, second, _ = run_example(fake, other)
    assert first.run_id != second.run_id
    reopened = Store(store.path)
    assert len(reopened.load_run(first.run_id).verdicts) == 8
    assert len(reopened.load_run(second.run_id).verdicts) == 8


def test_render_without_a_run_id_takes_the_latest_review_not_a_maintainers_probe(
    fake: FakeOpenAI, settings: Settings
) -> None:
    from dataclasses import replace

    store, first, settings = run_example(fake, settings)
    probe = replace(prepare_run(EXAMPLE_RUN, settings.with_overrides(temperature=0.5)), purpose="check")
    review(probe, settings.with_overrides(temperature=0.5), store, endpoint=Endpoint(fake.base_url, embedded=False))
    assert store.resolve_run_id(None) == first.run_id
    assert store.resolve_run_id(probe.run_id[:8]) == probe.run_id


def test_a_failed_refresh_is_asked_again_on_the_next_run(fake: FakeOpenAI, settings: Settings) -> None:
    store, first, settings = run_example(fake, settings)
    answers, fake.responder = fake.responder, scripted_responder(['{"verdict": "ship"}'])  # same endpoint, now broken
    _, refreshed, _ = run_example(fake, settings.with_overrides(reasks=0), refresh=True)
    fake.responder = answers
    assert refreshed.failed == 8
    _, rerun, _ = run_example(fake, settings)
    assert (rerun.cached, rerun.asked, rerun.failed, rerun.status) == (0, 8, 0, "finished")
    tally = tally_run(store.load_run(first.run_id))
    assert [side.ship_percent for side in tally.pairs[0].tools] == ["75%", "75%"]


def test_readers_vote_only_on_editors_runs_not_on_probes(fake: FakeOpenAI, settings: Settings) -> None:
    from dataclasses import replace

    store, first, settings = run_example(fake, settings)
    probe = replace(prepare_run(EXAMPLE_RUN, settings.with_overrides(temperature=0.5)), purpose="check")
    review(probe, settings.with_overrides(temperature=0.5), store, endpoint=Endpoint(fake.base_url, embedded=False))
    assert {target.run_id for target in store.vote_targets()} == {first.run_id}
