"""The preflight: the endpoint's free GET /models lets a run's first wave go out whole, and never costs a guarantee."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from panel.config import Settings
from panel.errors import StoreError
from panel.pipeline import draft_run
from panel.served_model import start_preflight
from tests.fake_openai import (
    FAULT_401,
    FAULT_404_MODEL,
    FakeOpenAI,
    RecordedRequest,
    chair_responder,
    reference_responder,
)
from tests.helpers import EXAMPLE_RUN, chat_requests, review_against, write_synthetic_run

KEY = "sk-the-right-key"
LATENCY = 0.3  # every reply, listings included, leaves this long after its request arrived


@pytest.fixture
def keyed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The run's key is the one a key-checking fake wants."""
    monkeypatch.setenv("OPENAI_API_KEY", KEY)


def arrivals(server: FakeOpenAI) -> list[float]:
    """When each chat request arrived, in order."""
    return sorted(request.timestamp for request in chat_requests(server))


def listings(server: FakeOpenAI) -> list[RecordedRequest]:
    return [request for request in server.requests if request.path == "/v1/models"]


@pytest.mark.usefixtures("keyed")
def test_an_endpoint_that_checks_keys_and_lists_the_model_gets_the_whole_first_wave(settings: Settings) -> None:
    with FakeOpenAI(api_key=KEY, latency=LATENCY) as server:
        _, outcome = review_against(server, settings, concurrency=8)
        seen = arrivals(server)
        probes = listings(server)
    assert outcome.status == "finished" and len(seen) == 8
    # All eight went out before the first answer could have come back: none waited for it.
    assert seen[-1] - seen[0] < LATENCY
    # The listing with the key and the same request without one (refused: the endpoint checks keys there).
    assert sorted((p.authorization or "", p.fault or "") for p in probes) == [("", FAULT_401), (f"Bearer {KEY}", "")]


@pytest.mark.parametrize(
    ("fake_options", "why"),
    [
        ({}, "lists its models to anyone, so the listing proves nothing about the key"),
        ({"api_key": KEY, "models": ["another-model"]}, "does not list the run's model"),
    ],
)
@pytest.mark.usefixtures("keyed")
def test_without_the_preflight_s_proof_the_first_verdict_is_asked_alone(
    settings: Settings, fake_options: dict, why: str
) -> None:
    with FakeOpenAI(latency=LATENCY, **fake_options) as server:
        _, outcome = review_against(server, settings, concurrency=8)
        seen = arrivals(server)
    assert outcome.status == "finished" and len(seen) == 8
    assert seen[1] - seen[0] >= LATENCY * 0.9, why  # the second waited for the first answer


def test_a_wrong_key_costs_one_chat_request_on_an_endpoint_that_checks_keys(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-a-wrong-key")
    with FakeOpenAI(api_key=KEY) as server:
        _, outcome = review_against(server, settings, concurrency=8, max_retries=2)
        chats = chat_requests(server)
    assert len(chats) == 1 and chats[0].fault == FAULT_401
    assert outcome.status == "stopped" and outcome.endpoint_fault is not None
    assert "OPENAI_API_KEY" in outcome.endpoint_fault


@pytest.mark.usefixtures("keyed")
def test_an_unknown_model_costs_one_chat_request_on_an_endpoint_that_lists_others(settings: Settings) -> None:
    with FakeOpenAI(api_key=KEY, models=["another-model"], faults=lambda index, body: FAULT_404_MODEL) as server:
        _, outcome = review_against(server, settings, concurrency=8)
        chats = chat_requests(server)
    assert len(chats) == 1
    assert outcome.endpoint_fault is not None and "--model" in outcome.endpoint_fault


@pytest.mark.usefixtures("keyed")
def test_a_damaged_database_costs_no_chat_request_even_when_the_endpoint_is_cleared(
    settings: Settings, tmp_path: Path
) -> None:
    db = tmp_path / "damaged.duckdb"
    db.write_bytes(b"not a database " * 2000)
    with FakeOpenAI(api_key=KEY) as server:
        damaged = settings.with_overrides(base_url=server.base_url, model="fake-model", db_path=db)
        with pytest.raises(StoreError, match="not a valid DuckDB database file"):
            draft_run(EXAMPLE_RUN, damaged, chair=False, render=False)
        assert chat_requests(server) == []


def test_the_preflight_is_moot_for_one_request_at_a_time_and_false_for_a_dead_endpoint(settings: Settings) -> None:
    with FakeOpenAI() as gone:
        pass  # stopped: its port now refuses connections
    dead = settings.with_overrides(base_url=gone.base_url, model="fake-model")
    assert start_preflight(dead.with_overrides(concurrency=1)) is None
    cleared = start_preflight(dead.with_overrides(concurrency=8))
    assert cleared is not None and cleared.result(timeout=10) is False


def test_the_chair_s_first_wave_goes_out_whole_once_a_reviewer_s_verdict_has_landed(
    settings: Settings, tmp_path: Path
) -> None:
    run_file = write_synthetic_run(tmp_path / "runs", 4)  # 32 verdicts, then 4 pair summaries
    # A fake that checks no keys: the preflight proves nothing, so the reviewers' first verdict goes alone.
    with FakeOpenAI(chair_responder(reference_responder({})), latency=LATENCY) as server:
        drafted = settings.with_overrides(base_url=server.base_url, model="fake-model", concurrency=8)
        outcome = draft_run(run_file, drafted, render=False)
        chairs = sorted(r.timestamp for r in chat_requests(server) if "BEGIN PANEL VERDICTS" in json.dumps(r.body))
    assert outcome.complete and len(chairs) == 4
    assert chairs[-1] - chairs[0] < LATENCY  # none of the four waited for another's answer
