"""End to end with the real embedded model (SmolLM2-135M via llama.cpp): slow, so there are two tests: one run, and
the same run with `--samples 3`."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import duckdb
import pytest

from panel.config import Settings
from panel.cost import Prices, run_cost
from panel.model.embedded import embedded_model_path
from panel.pipeline import draft_run
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


# Three samples are 24 answers: more than the suite's 600 s per test allows on a busy machine.
SAMPLES_TEST_TIMEOUT_S = 2400


@pytest.mark.timeout(SAMPLES_TEST_TIMEOUT_S)
def test_embedded_model_with_three_samples_stores_three_answers_per_persona_and_shows_stability(
    settings: Settings,
) -> None:
    settings = replace(settings, timeout_s=EMBEDDED_TIMEOUT_S, samples=3)
    draft = draft_run(EXAMPLE_RUN, settings, chair=False)
    # The tiny model sometimes fails a sample's validation after every re-ask: that sample abstains (shown),
    # it is never stored as a verdict. What the run must produce is every sample asked and the stability shown.
    assert not draft.members.faults
    with duckdb.connect(str(draft.store.path), read_only=True) as con:
        rows = con.execute(
            "SELECT persona_id, tool_id, sampling_json, valid, verdict, verdict_probability FROM verdicts"
        ).fetchall()
    seeds: dict[tuple[str, str], set[int]] = {}
    for persona, tool, sampling, *_ in rows:
        seeds.setdefault((persona, tool), set()).add(json.loads(sampling)["seed"])
    # 4 personas x 2 tools, each asked with seeds 7, 8 and 9: three samples stored per persona and tool.
    assert len(seeds) == 8 and all(found == {7, 8, 9} for found in seeds.values())
    valid = [(v, p) for *_, ok, v, p in rows if ok]
    assert len(valid) >= 20  # at most a few abstentions of 24
    # The embedded server returns token log-probabilities: every valid verdict has its token's probability.
    assert all(v in ("ship", "skip") and p is not None and 0 < p <= 1 for v, p in valid)
    consensus = draft.store.load_run(draft.run_id).consensus
    assert len(consensus) == 8 and all(len(found.votes) == 3 for found in consensus.values())
    html = draft.pages[0].read_text()
    # Each of the 8 verdicts says how stable it is: "k of 3 samples", or which samples abstained or split.
    assert len(re.findall(r"Samples: ", html)) == 8
    if len(valid) == 24:
        assert len(re.findall(r"Samples: (ship|skip) \([23] of 3 samples\)", html)) == 8
