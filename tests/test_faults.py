"""The run engine under faults: one retry owner per failure, bounded cost, every attempt stored, budgets."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from pathlib import Path

import duckdb

from panel.config import Settings
from panel.store import Store
from tests.fake_openai import (
    FAULT_400,
    FAULT_429,
    FAULT_500,
    FAULT_BAD_COMPLETION,
    FAULT_EMPTY200,
    FAULT_HANG,
    FAULT_HTML200,
    FAULT_RESET,
    FAULT_SCHEMA_VIOLATION,
    FAULT_TRUNCATED_JSON,
    FakeOpenAI,
    FaultPlan,
)
from tests.helpers import chat_requests, review_against, write_synthetic_run

SDK_FAULTS = (FAULT_429, FAULT_500, FAULT_RESET, FAULT_HANG)  # transport / HTTP status: the SDK retries
ANSWER_FAULTS = (FAULT_HTML200, FAULT_EMPTY200, FAULT_TRUNCATED_JSON, FAULT_SCHEMA_VIOLATION)  # tenacity re-asks


def rows(store: Store, sql: str) -> list[tuple]:
    with duckdb.connect(str(store.path), read_only=True) as con:
        return con.execute(sql).fetchall()


def transient_faults(rate: float, kinds: tuple[str, ...]) -> FaultPlan:
    """Fail `rate` of all requests in arrival order, each distinct request at most once (retrying it succeeds).

    Answer faults, which cost a re-ask, hit only first asks, so no verdict runs out of re-asks; the number of
    faults is fixed by `rate` whatever order concurrent requests arrive in.
    """
    seen: set[str] = set()
    lock = threading.Lock()
    owed, given = [0.0], [0]

    def plan(index: int, body: dict) -> str | None:
        key = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        with lock:
            owed[0] += rate
            if key in seen or owed[0] < 1:
                seen.add(key)
                return None
            seen.add(key)
            owed[0] -= 1
            pool = kinds if len(body["messages"]) == 2 else tuple(k for k in kinds if k in SDK_FAULTS)
            given[0] += 1
            return pool[given[0] % len(pool)]

    return plan


def test_each_fault_kind_is_retried_by_exactly_one_owner(settings: Settings) -> None:
    kinds = SDK_FAULTS + ANSWER_FAULTS
    schedule: list[str | None] = []
    for kind in kinds:  # one verdict at a time: verdict i meets fault i on its first request, then succeeds
        schedule += [kind, None]
    with FakeOpenAI(faults=schedule, retry_after="0.05", hang_seconds=3) as server:
        store, outcome = review_against(server, settings, concurrency=1, timeout_s=0.5, max_retries=2)
        requests = len(chat_requests(server))
    assert (outcome.asked, outcome.failed, outcome.status) == (8, 0, "finished")
    assert requests == 16 == outcome.requests
    attempts = rows(
        store,
        """SELECT v.verdict_id, a.status, a.http_status, a.sdk_retries, a.error_class FROM verdicts v
                              JOIN attempts a USING (verdict_id) ORDER BY v.verdict_id, a.number""",
    )
    by_verdict: dict[int, list[tuple]] = {}
    for verdict_id, *attempt in attempts:
        by_verdict.setdefault(verdict_id, []).append(tuple(attempt))
    seen = list(by_verdict.values())
    for sdk_owned in seen[:4]:  # the SDK's retry: one attempt that took two requests, no re-ask
        assert sdk_owned == [("ok", 200, 1, None)]
    assert seen[4] == [("bad_response", 200, 0, "MalformedResponse"), ("ok", 200, 0, None)]  # HTML page with 200
    assert seen[5] == [("bad_response", 200, 0, "JSONDecodeError"), ("ok", 200, 0, None)]  # empty 200
    assert seen[6] == [("invalid", 200, 0, "InvalidAnswer"), ("ok", 200, 0, None)]  # truncated JSON: re-asked
    assert seen[7] == [("invalid", 200, 0, "InvalidAnswer"), ("ok", 200, 0, None)]  # schema violation: re-asked


def test_a_200_that_is_not_a_chat_completion_is_a_failed_attempt_and_asked_again(settings: Settings) -> None:
    # JSON shaped like a completion but without a message: before, it ended the whole run with an AttributeError.
    with FakeOpenAI(faults=[FAULT_BAD_COMPLETION, None, FAULT_BAD_COMPLETION]) as server:
        store, outcome = review_against(server, settings, personas=["builder"], concurrency=1)
    assert (outcome.failed, outcome.status) == (0, "finished")
    assert rows(store, "SELECT status, http_status, error_class FROM attempts ORDER BY verdict_id, number") == [
        ("bad_response", 200, "MalformedResponse"),
        ("ok", 200, None),
        ("bad_response", 200, "MalformedResponse"),
        ("ok", 200, None),
    ]


def test_retry_after_is_honoured(settings: Settings) -> None:
    with FakeOpenAI(faults=[FAULT_429], retry_after="1.2") as server:
        _, outcome = review_against(server, settings, personas=["builder"], concurrency=1, max_retries=2)
        first, second = chat_requests(server)[:2]
    assert outcome.failed == 0
    assert second.timestamp - first.timestamp >= 1.1  # the SDK's own backoff would be under 0.5 s


def test_client_error_is_not_retried(settings: Settings) -> None:
    with FakeOpenAI(faults=[FAULT_400]) as server:
        store, outcome = review_against(server, settings, concurrency=1, max_retries=2)
        requests = len(chat_requests(server))
    assert requests == 8 and outcome.failed == 1 and outcome.status == "incomplete"
    assert rows(store, "SELECT status, http_status, sdk_retries FROM attempts WHERE status <> 'ok'") == [
        ("api_error", 400, 0)
    ]
    assert rows(store, "SELECT count(*) FROM verdicts WHERE NOT valid AND verdict IS NULL") == [(1,)]


def test_always_500_stops_at_a_bounded_number_of_requests_per_verdict(settings: Settings) -> None:
    with FakeOpenAI(faults=lambda index, body: FAULT_500) as server:
        started = time.monotonic()
        store, outcome = review_against(server, settings, concurrency=8, max_retries=2, reasks=3)
        elapsed = time.monotonic() - started
        requests = len(chat_requests(server))
    assert requests == 8 * 3  # 1 + max_retries each; no re-ask multiplies them
    assert outcome.failed == 8 and outcome.status == "incomplete"
    assert rows(store, "SELECT count(*), sum(request_count) FROM attempts JOIN verdicts USING (verdict_id)") == [
        (8, 24)
    ]
    assert elapsed < 10


def test_hung_endpoint_costs_at_most_timeout_times_tries(settings: Settings) -> None:
    with FakeOpenAI(faults=lambda index, body: FAULT_HANG, hang_seconds=10) as server:
        store, outcome = review_against(
            server, settings, personas=["builder"], concurrency=2, timeout_s=0.4, max_retries=1
        )
        requests = len(chat_requests(server))
    assert requests == 2 * 2 and outcome.failed == 2
    for answer in outcome.answers:  # two tries of 0.4 s and one SDK backoff (at most 0.5 s), plus slack
        assert len(answer.attempts) == 1 and answer.latency_s < 0.4 * 2 + 0.5 + 0.4
    assert {row[0] for row in rows(store, "SELECT error_class FROM attempts")} == {"APITimeoutError"}


def test_a_dropped_or_refused_connection_is_stored_as_a_connection_error_not_a_timeout(
    settings: Settings, tmp_path: Path
) -> None:
    # Whoever reads the attempts must tell a server that is down from one that is slow.
    with FakeOpenAI(faults=lambda index, body: FAULT_RESET) as dropping:
        dropped, _ = review_against(dropping, settings, personas=["builder"], max_retries=1)
    with FakeOpenAI() as gone:
        pass  # stopped: its port now refuses connections
    refused, outcome = review_against(
        gone, settings, personas=["builder"], max_retries=1, db_path=tmp_path / "refused.duckdb"
    )
    assert (outcome.failed, outcome.status) == (1, "stopped")  # nothing ever connected: the first verdict stops it
    for store in (dropped, refused):
        assert rows(
            store, "SELECT DISTINCT error_class, request_count FROM attempts JOIN verdicts USING (verdict_id)"
        ) == [("APIConnectionError", 2)]


def test_200_verdicts_at_a_30_percent_fault_rate_all_land_within_1_5x_requests(
    settings: Settings, tmp_path: Path
) -> None:
    run_file = write_synthetic_run(tmp_path, pairs=25)
    # A retried request is never failed again, so the plan aims a little above 30% to fail 30% of all requests.
    plan = transient_faults(0.32, SDK_FAULTS + ANSWER_FAULTS)
    with FakeOpenAI(faults=plan, retry_after="0.05", hang_seconds=2) as server:
        store, outcome = review_against(server, settings, run_file, concurrency=16, timeout_s=1, max_retries=2)
        log = chat_requests(server)
    faults = [r for r in log if r.fault is not None]
    print(f"{len(faults)} faults in {len(log)} requests ({len(faults) / len(log):.1%})")
    assert len(faults) / len(log) >= 0.29, "the schedule must really fail 30% of requests"
    assert {r.fault for r in faults} == set(SDK_FAULTS + ANSWER_FAULTS)
    assert (outcome.needed, outcome.failed, outcome.status) == (200, 0, "finished")
    assert rows(store, "SELECT count(*), count(DISTINCT cache_key), bool_and(valid) FROM verdicts") == [
        (200, 200, True)
    ]
    assert len(log) == 200 + len(faults) <= 1.5 * 200  # each fault costs exactly one more request
    # Every request the server saw is accounted for in the stored attempts: retry cost is never hidden.
    assert rows(store, "SELECT sum(request_count) FROM verdicts") == [(len(log),)]


def test_request_budget_is_a_hard_cap_and_resume_completes_the_run(settings: Settings) -> None:
    with FakeOpenAI() as server:
        store, stopped = review_against(server, settings, concurrency=4, max_requests=3)
        assert len(chat_requests(server)) == 3
        assert (stopped.status, stopped.asked, stopped.stop_reason) == ("stopped", 3, "request budget of 3 reached")
        assert rows(store, "SELECT status FROM runs") == [("stopped",)]
        _, resumed = review_against(server, settings, concurrency=4)
        assert len(chat_requests(server)) == 8
    assert (resumed.cached, resumed.asked, resumed.status) == (3, 5, "finished")
    assert rows(store, "SELECT count(*), count(DISTINCT cache_key) FROM verdicts") == [(8, 8)]


def test_token_budget_stops_after_the_answer_that_spent_it(settings: Settings) -> None:
    with FakeOpenAI() as server:
        store, outcome = review_against(server, settings, concurrency=1, token_budget=100)
        requests = len(chat_requests(server))
    assert requests == 1 and outcome.status == "stopped"
    assert outcome.stop_reason is not None and outcome.stop_reason.startswith("token budget of 100 reached")
    assert rows(store, "SELECT count(*) FROM verdicts WHERE valid") == [(1,)]


def test_an_attempt_cut_by_the_budget_is_stored_with_its_cost(settings: Settings) -> None:
    with FakeOpenAI(faults=[FAULT_500]) as server:
        store, outcome = review_against(server, settings, concurrency=1, max_requests=1, max_retries=2)
        assert len(chat_requests(server)) == 1  # the SDK's retry was refused, not sent
        assert rows(store, "SELECT valid, request_count FROM verdicts") == [(False, 1)]
        assert rows(store, "SELECT status, error_class FROM attempts") == [("over_budget", "OverBudget")]
        _, resumed = review_against(server, settings, concurrency=1)
    assert (resumed.cached, resumed.asked, resumed.failed) == (0, 8, 0)
    assert rows(store, "SELECT count(*) FROM verdicts WHERE valid") == [(8,)]
