"""Label-corrected ship rates (prediction-powered inference): the corrected_rates view, its SQL checked by
simulation against a known true rate, and its line in `panel compare`."""

from __future__ import annotations

import duckdb

from panel.compare import compare
from panel.config import Settings
from panel.store import Store
from panel.store.views import corrected_rate_sql
from panel.trust import corrected_rate_line
from tests.fake_openai import FakeOpenAI
from tests.helpers import run_panel
from tests.persona_edit import edit_skeptic, reviewed, strict_skeptic_responder, write_six_tool_run

TRUE_RATE, DRAWS, TOOLS, LABELLED = 0.30, 1000, 2000, 100
# A lenient judge, as measured ones are: it ships 95% of what editors ship and 15% of what they skip (39% overall).
SYNTHETIC = f"""
    CREATE TABLE synthetic AS
    WITH draws AS (
        SELECT d.range AS draw, i.range AS tool,
               hash(concat('truth:', d.range, ':', i.range)) / 18446744073709551615.0 < {TRUE_RATE} AS ships,
               hash(concat('judge:', d.range, ':', i.range)) / 18446744073709551615.0 AS judge_roll
        FROM range({DRAWS}) d, range({TOOLS + LABELLED}) i
    )
    SELECT draw,
           CASE WHEN (ships AND judge_roll < 0.95) OR (NOT ships AND judge_roll < 0.15) THEN 'ship' ELSE 'skip' END
               AS verdict,
           CASE WHEN tool < {LABELLED} THEN CASE WHEN ships THEN 'ship' ELSE 'skip' END END AS label
    FROM draws"""


def test_the_corrected_interval_covers_the_true_rate_in_95_of_1000_draws_and_is_narrower_than_labels_alone() -> None:
    con = duckdb.connect(":memory:")
    con.execute(SYNTHETIC)
    rows = con.execute(
        f"""SELECT avg((corrected_low <= {TRUE_RATE} AND {TRUE_RATE} <= corrected_high)::INTEGER),
                   avg((labelled_rate - labels_margin <= {TRUE_RATE}
                        AND {TRUE_RATE} <= labelled_rate + labels_margin)::INTEGER),
                   avg(corrected_margin), avg(labels_margin), avg(judged_rate), avg(corrected_rate), count(*)
            FROM ({corrected_rate_sql("synthetic", "draw")})"""
    ).fetchone()
    assert rows is not None
    coverage, labels_coverage, margin, labels_margin, judged, corrected, draws = rows
    assert draws == DRAWS
    assert 0.93 <= coverage <= 0.97, coverage
    assert 0.92 <= labels_coverage <= 0.98, labels_coverage
    assert margin < 0.8 * labels_margin, (margin, labels_margin)  # the judge's verdicts on all tools buy precision
    assert abs(judged - 0.39) < 0.01  # the judge alone is biased ...
    assert abs(corrected - TRUE_RATE) < 0.005  # ... the corrected estimate is not


def test_the_view_counts_each_tool_once_per_persona_version_and_compare_prints_it(
    workspace: Settings, tmp_path
) -> None:
    run_file = write_six_tool_run(tmp_path)
    with FakeOpenAI(responder=strict_skeptic_responder) as server:
        settings = reviewed(server, workspace, run_file)
        store = Store(settings.db_path)
        rates = {(r.persona_id, r.persona_version): r for r in store.corrected_rates()}
        skeptic = rates[("skeptic", 1)]
        assert skeptic.verdicts == 6 and skeptic.labels == 6  # the six tools, each labelled
        assert skeptic.corrected_rate == skeptic.labelled_rate  # every tool labelled: the labels are the estimate
        line = corrected_rate_line(skeptic)
        assert line.startswith(f"skeptic v1 ({skeptic.persona_hash[:8]}): judged ship ")
        assert "labelled" in line and "corrected" in line and "95% CI" in line
        edit_skeptic(settings)
        compare([run_file], settings, store)
        assert ("skeptic", 2) in {(r.persona_id, r.persona_version) for r in store.corrected_rates(["skeptic"])}
        printed = run_panel(
            "compare",
            str(run_file),
            "--persona",
            "skeptic",
            "--base-url",
            server.base_url,
            "--model",
            "fake-model",
            "--db",
            str(settings.db_path),
            "--personas-dir",
            str(settings.personas_dir),
            "--out",
            str(tmp_path / "out"),
        )
    assert printed.returncode == 0, printed.stderr
    assert "skeptic v1 (" in printed.stdout and "skeptic v2 (" in printed.stdout
    assert "corrected" in printed.stdout
