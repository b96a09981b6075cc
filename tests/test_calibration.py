"""The verdict token's probability as a second confidence: asked for where the profile allows it, stored beside the
self-reported one (NULL when the endpoint sends none), and scored against the editors' labels by `panel compare`."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import duckdb
import pytest

from panel.calibration import auc, calibration
from panel.compare import compare
from panel.config import Settings
from panel.model.logprobs import LOGPROB_PROBE_TOKENS, choice_probability
from panel.review import prepare_run, review
from panel.store import Store
from tests.fake_openai import FakeOpenAI, VerdictProbability
from tests.helpers import EXAMPLE_RUN, chat_requests
from tests.persona_edit import (
    SKEPTIC_GOLD,
    edit_skeptic,
    persona_and_tool,
    reviewed,
    strict_skeptic_responder,
    write_six_tool_run,
)


def _stored(db: Path) -> list[tuple[str, float | None]]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute("SELECT persona_id, verdict_probability FROM verdicts ORDER BY persona_id").fetchall()


def _review(server: FakeOpenAI, settings: Settings, **changes: Any) -> list[tuple[str, float | None]]:
    settings = settings.with_overrides(base_url=server.base_url, model="fake-model", **changes)
    outcome = review(prepare_run(EXAMPLE_RUN, settings), settings, Store(settings.db_path))
    assert outcome.failed == 0
    return _stored(settings.db_path)


def test_the_verdict_token_probability_is_stored_when_the_profile_asks(settings: Settings) -> None:
    with FakeOpenAI(verdict_probability=lambda body, content: 0.8) as server:
        rows = _review(server, settings, logprobs=True)
        bodies = [r.body for r in chat_requests(server)]
    assert all(b["logprobs"] is True and b["top_logprobs"] == 2 for b in bodies)
    assert len(rows) == 8 and all(p == pytest.approx(0.8) for _, p in rows)


def test_a_probe_asks_the_logprobs_in_a_short_request_and_the_answer_without_them(settings: Settings) -> None:
    """The embedded default: llama-cpp-python computes log-probabilities slowly, so only a short probe asks them."""
    with FakeOpenAI(verdict_probability=lambda body, content: 0.8) as server:
        rows = _review(server, settings, logprobs=True, logprobs_probe=True)
        bodies = [r.body for r in chat_requests(server)]
    probes = [b for b in bodies if b.get("logprobs")]
    answers = [b for b in bodies if "logprobs" not in b]
    assert len(probes) == len(answers) == 8 == len(bodies) / 2
    assert {b["max_tokens"] for b in probes} == {LOGPROB_PROBE_TOKENS} and {b["max_tokens"] for b in answers} == {700}
    # The probe is the answer's request (prompt, schema, seed), only shorter and with log-probabilities.
    same = ("logprobs", "top_logprobs", "max_tokens")
    assert sorted(json.dumps({k: v for k, v in b.items() if k not in same}, sort_keys=True) for b in probes) == sorted(
        json.dumps({k: v for k, v in b.items() if k != "max_tokens"}, sort_keys=True) for b in answers
    )
    assert len(rows) == 8 and all(p == pytest.approx(0.8) for _, p in rows)
    assert Settings().probes_logprobs and not Settings(base_url="http://127.0.0.1:1/v1", logprobs=True).probes_logprobs


def test_no_probability_is_stored_when_the_endpoint_sends_none(settings: Settings) -> None:
    with FakeOpenAI() as server:  # asked, but like an endpoint without log-probabilities it returns none
        rows = _review(server, settings, logprobs=True)
        assert chat_requests(server)[0].body["logprobs"] is True
    assert len(rows) == 8 and all(p is None for _, p in rows)


def test_an_unknown_endpoint_is_not_asked_for_logprobs_by_default(settings: Settings) -> None:
    with FakeOpenAI(verdict_probability=lambda body, content: 0.8) as server:
        rows = _review(server, settings)
        assert all("logprobs" not in r.body for r in chat_requests(server))
    assert all(p is None for _, p in rows)
    assert Settings().wants_logprobs and not Settings(base_url="http://127.0.0.1:1/v1").wants_logprobs


def test_tool_call_answers_carry_no_probability(settings: Settings) -> None:
    with FakeOpenAI(verdict_probability=lambda body, content: 0.8) as server:
        rows = _review(server, settings, logprobs=True, mode="tools")
    assert all(p is None for _, p in rows)


def test_the_verdict_value_is_found_across_tokens() -> None:
    tokens = [("{", -0.1), (' "', -0.1), ("ver", -0.1), ("dict", -0.1), ('":', -0.1), (' "', -0.1), ("sh", -1.0)]
    tokens += [("ip", -0.01), ('"}', -0.1)]
    assert choice_probability(tokens, "verdict", "ship") == pytest.approx(math.exp(-1.0))
    assert choice_probability(tokens, "verdict", "skip") is None  # the tokens spell another value
    assert choice_probability([('{"review": "ship it"}', -0.1)], "verdict", "ship") is None
    assert choice_probability(None, "verdict", "ship") is None
    assert choice_probability([('{"verdict": "', -0.1), ("ship", float("nan"))], "verdict", "ship") is None


def test_auc_counts_ties_half_and_needs_both_classes() -> None:
    assert auc([0.9, 0.8, 0.1], [True, True, False]) == 1.0
    assert auc([0.5, 0.5], [True, False]) == 0.5
    assert auc([0.2, 0.9, 0.4, 0.6], [True, False, True, False]) == 0.0
    assert auc([0.9], [True]) is None


def _follows_labels(body: dict[str, Any], content: str) -> float:
    """Sure of a verdict that matches the skeptic's gold label, unsure of one that does not."""
    persona, tool, _ = persona_and_tool(body)
    verdict = json.loads(content)["verdict"]
    return 0.95 if SKEPTIC_GOLD.get(tool, "ship") == verdict else 0.3


def _against_labels(body: dict[str, Any], content: str) -> float:
    return 1.25 - _follows_labels(body, content)


def _compared_calibration(
    workspace: Settings, tmp_path: Path, probability: VerdictProbability, logprobs: bool = True
) -> str:
    run_file = write_six_tool_run(tmp_path)
    with FakeOpenAI(responder=strict_skeptic_responder, verdict_probability=probability) as server:
        settings = reviewed(server, workspace.with_overrides(logprobs=logprobs), run_file)
        edit_skeptic(settings)
        result = compare([run_file], settings, Store(settings.db_path))
    return calibration((item.gold, item.after) for item in result.items).line()


def test_compare_names_the_token_probability_when_it_separates_the_labels_better(
    workspace: Settings, tmp_path: Path
) -> None:
    # The edited skeptic ships Alpha, Bravo, Foxtrot (0.8) and skips Charlie, Delta, Echo (0.6); the labels ship
    # the first three: self-reported ship scores .8 .8 .4 | .4 .4 .8 give AUC 6/9; the token's 0.95/0.3 give 1.
    line = _compared_calibration(workspace, tmp_path, _follows_labels)
    assert line == (
        "calibration (n = 6): token probability AUC 1.00, self-reported confidence AUC 0.67; "
        "the verdict-token probability separates the editors' ship from skip better"
    )


def test_compare_names_the_self_reported_confidence_when_the_token_misleads(
    workspace: Settings, tmp_path: Path
) -> None:
    line = _compared_calibration(workspace, tmp_path, _against_labels)
    assert line == (
        "calibration (n = 6): token probability AUC 0.00, self-reported confidence AUC 0.67; "
        "the self-reported confidence separates the editors' ship from skip better"
    )


def test_compare_says_when_there_are_no_token_probabilities(workspace: Settings, tmp_path: Path) -> None:
    line = _compared_calibration(workspace, tmp_path, _follows_labels, logprobs=False)
    assert line.startswith("calibration: too few labelled verdicts with a verdict-token probability (n = 0;")
