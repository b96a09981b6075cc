"""End to end with the real embedded model (SmolLM2-135M via llama.cpp): slow, so there is one test."""

from __future__ import annotations

from dataclasses import replace

import duckdb
import pytest

from panel.config import Settings
from panel.cost import Prices, run_cost
from panel.model.embedded import embedded_model_path
from panel.render import write_pages
from panel.review import prepare_run, review
from panel.store import Store
from panel.tally import tally_run
from tests.helpers import EXAMPLE_RUN

pytestmark = pytest.mark.slow

# A busy 2-core machine took 5-43 s per answer: this test checks what the model produces, never how fast,
# so a request may take as long as the embedded default allows (the `settings` fixture's 10 s suits the fake).
EMBEDDED_TIMEOUT_S = Settings().timeout_s


def test_embedded_model_produces_eight_valid_stored_verdicts_and_a_page(settings: Settings) -> None:
    assert embedded_model_path().stat().st_size > 50_000_000
    settings = replace(settings, timeout_s=EMBEDDED_TIMEOUT_S)
    prepared = prepare_run(EXAMPLE_RUN, settings)
    store = Store(settings.db_path)
    outcome = review(prepared, settings, store)
    assert outcome.failed == 0, [a.attempts[-1].error_message for a in outcome.answers if a.verdict is None]
    with duckdb.connect(str(store.path), read_only=True) as con:
        rows = con.execute("SELECT verdict, confidence, review, model, valid FROM verdicts").fetchall()
        # The bundled model runs here: its attempts cost $0 (not an unknown cost), and the run says so.
        costs = con.execute("SELECT DISTINCT cost_usd, price_input, price_output FROM attempts").fetchall()
    assert len(rows) == 8
    assert all(
        v in ("ship", "skip") and 0 <= c <= 1 and len(r) >= 40 and m == "smollm2-135m-instruct" and ok
        for v, c, r, m, ok in rows
    )
    assert costs == [(0.0, 0.0, 0.0)]
    assert run_cost(outcome.answers, Prices.of(settings)).line().startswith("cost $0 (embedded model; ")
    page = write_pages(tally_run(store.load_run(outcome.run_id)), settings.out_dir)[0]
    html = page.read_text()
    assert "Panel ship" in html and "Reviewer scorecard" in html
