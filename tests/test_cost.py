"""Cost: each stored attempt carries what it cost at the prices it was asked with; review, compare and check print
what they spent (cached verdicts cost nothing); analysts sum it by run, persona version and model in `spend`."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import duckdb
import pytest

from panel.config import Settings
from panel.cost import Prices, RunCost, dollars
from panel.model.endpoint import Endpoint
from panel.review import prepare_run, review
from panel.store import Store
from panel.store.migrations import MIGRATIONS
from panel.store.run_writes import answers_record
from panel.warehouse import run_query
from tests.fake_openai import FakeOpenAI
from tests.helpers import EXAMPLE_RUN, PROJECT_ROOT, run_panel
from tests.persona_edit import MARKER

NO_PRICES = "no prices set (--price-input/--price-output or price_input/price_output in panel.toml)"


def panel(*args: str) -> subprocess.CompletedProcess:
    """`panel *args` in a child process with no OPENAI_*/PANEL_* settings from this test."""
    return run_panel(*args, clean_env=True)


def attempts(db: Path) -> list[tuple]:
    return run_query(
        db,
        "SELECT prompt_tokens, completion_tokens, cost_usd, price_input, price_output "
        "FROM attempts ORDER BY attempt_id",
    ).rows


def cost_line(rows: list[tuple], prices: str) -> str:
    """The line a command prints for these attempt rows at these prices ('$0.15/$0.60')."""
    prompt, completion = sum(r[0] for r in rows), sum(r[1] for r in rows)
    return (
        f"cost {dollars(sum(r[2] for r in rows))} ({prompt:,} prompt + {completion:,} completion tokens "
        f"at {prices} per M)"
    )


# --- prices ------------------------------------------------------------------------------------------------
def test_prices_are_per_million_tokens_unknown_unless_set_and_zero_for_the_embedded_model() -> None:
    endpoint = Settings(base_url="http://127.0.0.1:9/v1")
    assert Prices.of(endpoint) == Prices(None, None) and Prices.of(endpoint).cost(1000, 1000) is None
    priced = endpoint.with_overrides(price_input=0.15, price_output=0.60)
    assert Prices.of(priced).cost(1_000_000, 1_000_000) == pytest.approx(0.75)
    assert Prices.of(Settings()) == Prices(0.0, 0.0, embedded=True)  # the bundled model runs here
    assert Prices.of(Settings(price_input=1.0, price_output=2.0)) == Prices(1.0, 2.0)  # unless priced anyway
    # The Batch API price: as set, else half the live price.
    assert Prices.batch_of(priced) == Prices(0.075, 0.30)
    assert Prices.batch_of(priced.with_overrides(price_batch_output=0.2)) == Prices(0.075, 0.2)
    assert Prices.batch_of(endpoint) == Prices(None, None)


def test_the_cost_line_says_the_tokens_and_prices_or_what_to_set() -> None:
    assert RunCost(12_345, 2_345, 0.0123, Prices(0.15, 0.60)).line() == (
        "cost $0.0123 (12,345 prompt + 2,345 completion tokens at $0.15/$0.60 per M)"
    )
    assert RunCost(12_345, 2_345, 4.5, Prices(0.075, 30.0)).line() == (
        "cost $4.50 (12,345 prompt + 2,345 completion tokens at $0.075/$30.00 per M)"
    )
    assert RunCost(10, 5, None, Prices()).line() == f"cost unknown (10 prompt + 5 completion tokens): {NO_PRICES}"
    assert (
        RunCost(10, 5, None, Prices(0.15, None))
        .line()
        .endswith("no price_output set (--price-input/--price-output or price_input/price_output in panel.toml)")
    )
    assert RunCost(10, 5, 0.0, Prices(0.0, 0.0, embedded=True)).line() == (
        "cost $0 (embedded model; 10 prompt + 5 completion tokens)"
    )
    assert dollars(0.0000123) == "$0.000012" and dollars(None) == "—"
    assert RunCost(0, 0, 0.0, Prices()).line() == "cost $0 (0 prompt + 0 completion tokens)"  # all cached
    assert Prices().cost(0, 0) == 0.0  # a refused request used no tokens: $0 whatever the price


# --- review ----------------------------------------------------------------------------------------------
def test_review_stores_each_attempts_cost_and_prints_the_runs_and_a_rerun_costs_nothing(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    db, out = tmp_path / "panel.duckdb", tmp_path / "pages"
    args = ["review", str(EXAMPLE_RUN), "--base-url", fake.base_url, "--db", str(db), "--out", str(out)]
    first = panel(*args, "--price-input", "0.15", "--price-output", "0.60")
    assert first.returncode == 0, first.stderr
    rows = attempts(db)
    assert len(rows) == 9  # eight verdicts and the chair's summary, from the fake's usage counts
    for prompt, completion, cost, price_input, price_output in rows:
        assert prompt > 0 and completion > 0
        assert cost == pytest.approx((prompt * 0.15 + completion * 0.60) / 1_000_000)
        assert (price_input, price_output) == (0.15, 0.60)
    assert cost_line(rows, "$0.15/$0.60") in first.stdout.splitlines()
    spend = run_query(
        db, "SELECT sum(cost_usd), sum(attempts), sum(unpriced_attempts), count(*), list(DISTINCT purpose) FROM spend"
    ).rows[0]
    assert spend[0] == pytest.approx(sum(r[2] for r in rows)) and spend[1:] == (9, 0, 5, ["review"])

    again = panel(*args, "--price-input", "0.15", "--price-output", "0.60")
    assert again.returncode == 0, again.stderr
    assert "cost $0 (0 prompt + 0 completion tokens at $0.15/$0.60 per M)" in again.stdout.splitlines()

    # A later price change costs new attempts at the new price and leaves the stored ones as they were.
    refreshed = panel(*args, "--refresh", "--price-input", "1", "--price-output", "2")
    assert refreshed.returncode == 0, refreshed.stderr
    later = attempts(db)
    assert later[:9] == rows and {(r[3], r[4]) for r in later[9:]} == {(1.0, 2.0)} and len(later) == 18
    assert cost_line(later[9:], "$1.00/$2.00") in refreshed.stdout.splitlines()


def test_without_prices_the_cost_is_unknown_printed_so_and_stored_as_null(fake: FakeOpenAI, tmp_path: Path) -> None:
    db = tmp_path / "panel.duckdb"
    result = panel(
        "review", str(EXAMPLE_RUN), "--base-url", fake.base_url, "--db", str(db), "--out", str(tmp_path / "pages")
    )
    assert result.returncode == 0, result.stderr
    rows = attempts(db)
    assert {r[2:] for r in rows} == {(None, None, None)}
    prompt, completion = sum(r[0] for r in rows), sum(r[1] for r in rows)
    assert f"cost unknown ({prompt:,} prompt + {completion:,} completion tokens): {NO_PRICES}" in result.stdout
    assert run_query(db, "SELECT sum(cost_usd), sum(unpriced_attempts) FROM spend").rows == [(None, 9)]


# --- check and compare -----------------------------------------------------------------------------------
def test_check_prints_what_its_review_and_probes_cost(fake: FakeOpenAI, tmp_path: Path) -> None:
    db = tmp_path / "panel.duckdb"
    result = panel(
        "check",
        str(EXAMPLE_RUN),
        "--sample",
        "2",
        "--base-url",
        fake.base_url,
        "--db",
        str(db),
        "--price-input",
        "0.15",
        "--price-output",
        "0.60",
    )
    assert result.returncode in (0, 1), result.stderr  # 1: the fake's panel fails a check, which is fine here
    rows = attempts(db)
    assert len(rows) == 8 + 2 + 2  # the run's verdicts, then two swapped and two blinded probes
    assert cost_line(rows, "$0.15/$0.60") in result.stdout.splitlines()
    assert run_query(db, "SELECT DISTINCT purpose FROM spend").rows == [("check",)]


def test_compare_prints_what_it_spent_and_its_report_says_the_cost(fake: FakeOpenAI, tmp_path: Path) -> None:
    db, personas = tmp_path / "panel.duckdb", tmp_path / "personas"
    shutil.copytree(PROJECT_ROOT / "personas", personas)
    common = ["--base-url", fake.base_url, "--db", str(db), "--personas-dir", str(personas)]
    assert panel("review", str(EXAMPLE_RUN), *common, "--out", str(tmp_path / "pages")).returncode == 0
    skeptic = personas / "skeptic.md"
    skeptic.write_text(skeptic.read_text(encoding="utf-8") + "\n" + MARKER + "\n", encoding="utf-8")
    html = tmp_path / "compare.html"
    result = panel(
        "compare", str(EXAMPLE_RUN), *common, "--html", str(html), "--price-input", "0.15", "--price-output", "0.60"
    )
    assert result.returncode == 0, result.stderr
    asked = run_query(
        db,
        "SELECT a.prompt_tokens, a.completion_tokens, a.cost_usd FROM attempts a "
        "JOIN verdicts v USING (verdict_id) JOIN runs r USING (run_id) "
        "WHERE r.purpose = 'compare'",
    ).rows
    assert len(asked) == 2  # the edited skeptic on both tools; the old side came from the cache
    line = cost_line(asked, "$0.15/$0.60")
    assert line in result.stdout.splitlines() and line in html.read_text(encoding="utf-8")
    assert "$0.15 per million prompt tokens" in html.read_text(encoding="utf-8")
    assert "--price-prompt" not in panel("compare", "--help").stdout


# --- upgrades --------------------------------------------------------------------------------------------
def test_a_database_from_before_costs_upgrades_with_its_attempts_unpriced(tmp_path: Path) -> None:
    db = tmp_path / "old.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute(
            "CREATE TABLE schema_migrations (number INTEGER PRIMARY KEY, name VARCHAR NOT NULL, "
            "applied_at TIMESTAMPTZ NOT NULL)"
        )
        for number, name, migration in MIGRATIONS:
            if number < 10:  # the schema the code before prices wrote
                migration(con)
                con.execute("INSERT INTO schema_migrations VALUES (?, ?, now())", [number, name])
        con.execute(
            "INSERT INTO runs VALUES ('old-run', 'Old', 'r.yaml', 'm', 'http://x/v1', 'json_schema', '{}', "
            "'finished', now(), now(), 'review')"
        )
        con.execute(
            "INSERT INTO verdicts (cache_key, generation, run_id, tool_id, rival_tool_id, persona_id, "
            "persona_hash, template_hash, model, mode, sampling_json, valid, attempt_count, request_count, "
            "prompt_tokens, completion_tokens, latency_s, flags_json, created_at) VALUES ('k', 1, 'old-run', "
            "'t', 'r', 'skeptic', 'h', 'th', 'm', 'json_schema', '{}', false, 2, 2, 300, 40, 1.0, '[]', now())"
        )
        for number in (1, 2):
            con.execute(
                "INSERT INTO attempts (verdict_id, number, status, prompt_tokens, completion_tokens, "
                "latency_s, sdk_retries, started_at) VALUES (1, ?, 'invalid', 150, 20, 0.5, 0, now())",
                [number],
            )
    assert run_query(db, "SELECT run_id, attempts, prompt_tokens, cost_usd, unpriced_attempts FROM spend").rows == [
        ("old-run", 2, 300, None, 2)
    ]
    assert run_query(db, "SELECT max(number) FROM schema_migrations").rows == [(MIGRATIONS[-1][0],)]


def test_attempts_journaled_before_costs_fold_as_unpriced(fake: FakeOpenAI, settings: Settings) -> None:
    settings = settings.with_overrides(base_url=fake.base_url, model="fake-model", price_input=0.15, price_output=0.60)
    store = Store(settings.db_path)
    outcome = review(
        prepare_run(EXAMPLE_RUN, settings), settings, store, endpoint=Endpoint(fake.base_url, embedded=False)
    )
    record = answers_record(outcome.run_id, outcome.answers, settings)
    for verdict in record["verdicts"]:  # as an older panel journaled them: no cost or prices
        verdict["attempts"] = [attempt[:-3] for attempt in verdict["attempts"]]
    store.journal.append(record)
    assert store.fold_journal()
    costs = run_query(
        settings.db_path,
        "SELECT a.cost_usd IS NULL, count(*) FROM attempts a "
        "JOIN verdicts v USING (verdict_id) GROUP BY ALL ORDER BY 1",
    ).rows
    assert costs == [(False, 8), (True, 8)]
