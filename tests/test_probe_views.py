"""Maintainers' probe runs (compare, check) stay out of analysts' default views; `*_all` twins and `spend` keep them."""

from __future__ import annotations

from pathlib import Path

from panel.compare import compare
from panel.config import Settings
from panel.consistency import check
from panel.review import prepare_run, review
from panel.store import Store
from panel.warehouse import run_query
from tests.fake_openai import FakeOpenAI
from tests.persona_edit import edit_skeptic, reviewed, strict_skeptic_responder, write_six_tool_run

DEFAULT_VIEWS = ("run_verdicts", "pair_summary", "persona_answers", "run_agreement")


def run_ids(db: Path, view: str) -> set[str]:
    return {row[0] for row in run_query(db, f"SELECT DISTINCT run_id FROM {view}").rows}


def test_a_compare_run_is_in_no_default_view_until_a_review_uses_its_answers(
    workspace: Settings, tmp_path: Path
) -> None:
    run_file = write_six_tool_run(tmp_path)
    with FakeOpenAI(responder=strict_skeptic_responder) as server:
        settings = reviewed(server, workspace, run_file)
        db = settings.db_path
        [(review_run,)] = run_query(db, "SELECT run_id FROM runs").rows
        edit_skeptic(settings)
        compare([run_file], settings, Store(db))
        probes = {row[0] for row in run_query(db, "SELECT run_id FROM runs WHERE purpose = 'compare'").rows}
        assert len(probes) == 2  # the before and after sides

        for view in DEFAULT_VIEWS:
            assert run_ids(db, view) == {review_run}, view
            if view != "persona_answers":  # an answer's run is the one that asked: the cached side asked nothing
                assert run_ids(db, f"{view}_all") == {review_run} | probes, view
        assert run_query(db, "SELECT purpose, count(*) FROM persona_answers_all GROUP BY ALL ORDER BY 1").rows == [
            ("compare", 6),
            ("review", 24),
        ]
        assert run_query(db, "SELECT count(*) FROM pair_summary").rows == [(3,)]
        assert run_query(db, "SELECT purpose, count(*) FROM pair_summary_all GROUP BY ALL ORDER BY 1").rows == [
            ("compare", 6),
            ("review", 3),
        ]
        # The edited skeptic answered only for the compare: its version is in no default figure.
        by_version = run_query(
            db, "SELECT persona_version, answers FROM persona_by_version WHERE persona_id = 'skeptic'"
        ).rows
        assert by_version == [(1, 6)]
        assert run_query(
            db,
            "SELECT persona_version, purpose, answers FROM persona_by_version_all "
            "WHERE persona_id = 'skeptic' ORDER BY 1, 2",
        ).rows == [(1, "review", 6), (2, "compare", 6)]
        assert run_query(db, "SELECT DISTINCT purpose FROM persona_by_month_all ORDER BY 1").rows == [
            ("compare",),
            ("review",),
        ]
        # Its spend is still counted: probes cost real requests.
        assert run_query(
            db, "SELECT purpose, persona_id, sum(attempts) FROM spend GROUP BY ALL ORDER BY 1, 2"
        ).rows == [
            ("compare", "skeptic", 6),
            ("review", "builder", 6),
            ("review", "business", 6),
            ("review", "futurist", 6),
            ("review", "skeptic", 6),
        ]

        # The edit is adopted: a review reuses the compare's answers, which now count as the review's.
        review(prepare_run(run_file, settings), settings, Store(db))
        assert run_query(
            db, "SELECT persona_version, answers FROM persona_by_version WHERE persona_id = 'skeptic' ORDER BY 1"
        ).rows == [(1, 6), (2, 6)]
        assert run_query(db, "SELECT count(*) FROM spend WHERE purpose = 'compare'").rows == [(1,)]


def test_check_probes_stay_out_of_the_default_views(workspace: Settings, tmp_path: Path) -> None:
    run_file = write_six_tool_run(tmp_path)
    with FakeOpenAI(responder=strict_skeptic_responder) as server:
        settings = reviewed(server, workspace, run_file)
        db = settings.db_path
        # A view without ORDER BY has no row order (DuckDB's parallel scan may change it): compare the rows as sets.
        before = {
            view: sorted(run_query(db, f"SELECT * FROM {view}").rows, key=repr)
            for view in (*DEFAULT_VIEWS, "persona_by_version", "persona_by_month")
        }
        check(run_file, settings, Store(db), sample=4)
    for view, rows in before.items():
        assert sorted(run_query(db, f"SELECT * FROM {view}").rows, key=repr) == rows, view
    assert run_query(
        db, "SELECT purpose, count(DISTINCT run_id) FROM run_agreement_all GROUP BY ALL ORDER BY 1"
    ).rows == [("check", 2), ("review", 1)]
