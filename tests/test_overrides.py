"""Editor overrides belong to one pair, never leave the page showing None, and the page only suggests ones that work."""

from __future__ import annotations

import shutil
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pytest

from panel.answer_kinds import PICKS, AnswerRow, ChairSummary, kind_for, kind_of
from panel.cli import main
from panel.config import Settings
from panel.errors import OverrideError
from panel.overrides import OverrideRequest, apply_override
from panel.render import render_html
from panel.store import Store
from panel.verdict import VERDICTS, Verdict
from tests.fake_openai import FAULT_SCHEMA_VIOLATION, FakeOpenAI, reference_responder
from tests.helpers import (
    EXAMPLE_RUN,
    PROJECT_ROOT,
    Draft,
    make_draft,
    reference_reviewers,
    visible,
    writer_lock_held_elsewhere,
)

SMOL, SONAR, OTHER = "SmolVLM2-2B", "Perplexity Sonar Pro 2 API", "Other Tool"
CARDS = PROJECT_ROOT / "runs" / "cards"


def two_pair_run(folder: Path) -> Path:
    """A run file whose two pairs share their left tool: [SmolVLM2-2B, Sonar] and [SmolVLM2-2B, Other Tool]."""
    path = folder / "two-pairs.yaml"
    shutil.copytree(CARDS, folder / "cards")  # card paths must stay inside the run file's folder
    path.write_text(
        f"""title: Two pairs sharing a tool
pairs:
  - [cards/smolvlm2-2b.yaml, cards/perplexity-sonar-pro-2.yaml]
  - - cards/smolvlm2-2b.yaml
    - name: {OTHER}
      category: Developer Tools
      tagline: Another tool for the same job
      description: Other Tool is a hosted API for image understanding with a free tier and paid team plans.
      pricing: {{entry: Free, details: Free tier and paid team plans.}}
""",
        encoding="utf-8",
    )
    return path


def override(settings: Settings, *args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run `panel override` in process; return its exit code, stdout and stderr."""
    try:
        main(["override", *args, "--editor", "ed", "--db", str(settings.db_path), "--out", str(settings.out_dir)])
        code = 0
    except SystemExit as exited:
        code = int(exited.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def two_pairs(settings: Settings, tmp_path: Path) -> Draft:
    """The two-pair run reviewed and summarised by the fake, pages written."""
    with FakeOpenAI(responder=reference_reviewers()) as server:
        return make_draft(server, settings, two_pair_run(tmp_path))


def test_chair_override_found_by_the_right_tool_changes_only_its_own_pair(
    two_pairs: Draft, capsys: pytest.CaptureFixture[str]
) -> None:
    before = two_pairs.tally().pairs[0].chair
    code, out, err = override(
        two_pairs.settings,
        "--tool",
        OTHER,
        "--persona",
        "chair",
        "--verdict",
        "left",
        "--quote",
        "SmolVLM2-2B wins this pair for teams that host their own models.",
        capsys=capsys,
    )
    assert code == 0, err
    assert f"chair on pair 2 ({SMOL} vs {OTHER}): right → left, quote edited (by ed)" in out
    first, second = two_pairs.tally().pairs
    assert (first.pick, first.chair.review, first.chair.overridden) == (before.verdict, before.review, False)
    assert (second.pick, second.chair.override_editor) == ("left", "ed")
    assert second.chair.headline is None  # the model's "Ship with Other Tool" argued for the old pick
    pages = [visible(page.read_text(encoding="utf-8")) for page in two_pairs.pages]
    assert "then edited by ed" not in pages[0] and f"The panel would ship with {SMOL}" in pages[1]
    assert "Ship with Other Tool" not in pages[1]


def test_reviewer_override_on_a_tool_in_two_pairs_asks_for_the_pair_then_changes_only_that_one(
    two_pairs: Draft, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = override(
        two_pairs.settings, "--tool", SMOL, "--persona", "business", "--verdict", "ship", capsys=capsys
    )
    assert code == 2 and f"'{SMOL}' is in pairs 1, 2" in err and "give --pair N" in err
    assert err.strip().count("\n") == 0
    code, out, err = override(
        two_pairs.settings, "--tool", SMOL, "--pair", "2", "--persona", "business", "--verdict", "ship", capsys=capsys
    )
    assert code == 0 and f"business on {SMOL} in pair 2: skip → ship" in out, err
    first, second = two_pairs.tally().pairs
    assert first.left.verdicts["business"].verdict == "skip" and not first.left.verdicts["business"].overridden
    assert second.left.verdicts["business"].verdict == "ship"
    with duckdb.connect(str(two_pairs.settings.db_path), read_only=True) as con:
        view = con.execute(
            """SELECT pair_index, verdict, overridden FROM run_verdicts
                              WHERE tool_name = ? AND persona_id = 'business' ORDER BY pair_index""",
            [SMOL],
        ).fetchall()
    assert view == [(0, "skip", False), (1, "ship", True)]


def test_chair_takes_pair_alone_and_its_own_headline(two_pairs: Draft, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = override(
        two_pairs.settings,
        "--pair",
        "1",
        "--persona",
        "chair",
        "--verdict",
        "right",
        "--headline",
        "Sonar for research teams",
        capsys=capsys,
    )
    assert code == 0 and f"chair on pair 1 ({SMOL} vs {SONAR}): both → right, headline edited (by ed)" in out, err
    chair = two_pairs.tally().pairs[0].chair
    assert (chair.verdict, chair.headline) == ("right", "Sonar for research teams")
    assert chair.review == chair.model_review  # the summary was not given: the model's stays
    code, _, err = override(two_pairs.settings, "--pair", "3", "--persona", "chair", "--verdict", "left", capsys=capsys)
    assert code == 2 and "has pairs 1 to 2" in err


def test_overrides_from_before_pairs_were_recorded_still_apply_to_every_pair(two_pairs: Draft) -> None:
    tool_id = two_pairs.tally().pairs[0].left.tool_id
    with duckdb.connect(str(two_pairs.settings.db_path)) as con:  # a row as migration 2's schema wrote it
        con.execute(
            """INSERT INTO overrides (run_id, tool_id, persona_id, verdict, review, editor, note, created_at)
                       VALUES (?, ?, 'business', 'ship', NULL, 'old', NULL, ?)""",
            [two_pairs.review.run_id, tool_id, datetime.now(timezone.utc)],
        )
    assert [pair.left.verdicts["business"].verdict for pair in two_pairs.tally().pairs] == ["ship", "ship"]
    listed = Store(two_pairs.settings.db_path).overrides(two_pairs.review.run_id)
    assert [(o.pair_index, o.model_verdict) for o in listed] == [(None, "skip")]


def test_override_of_an_invalid_answer_needs_a_quote_and_the_page_never_shows_none(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    with FakeOpenAI(responder=reference_reviewers(), faults=lambda index, body: FAULT_SCHEMA_VIOLATION) as server:
        draft = make_draft(server, settings.with_overrides(reasks=0), EXAMPLE_RUN)
    code, _, err = override(draft.settings, "--tool", SMOL, "--persona", "business", "--verdict", "ship", capsys=capsys)
    assert code == 2 and "--quote: the model gave no valid answer" in err
    code, _, err = override(
        draft.settings,
        "--tool",
        SMOL,
        "--persona",
        "business",
        "--verdict",
        "ship",
        "--quote",
        "Free weights make this the cheap pick for self-hosting teams.",
        capsys=capsys,
    )
    assert code == 0, err
    draft.rerender()
    assert "None" not in visible(draft.html) and "None" not in draft.markdown
    assert "Free weights make this the cheap pick" in draft.html


def test_with_every_reviewer_failed_the_page_suggests_no_chair_override(settings: Settings) -> None:
    with FakeOpenAI(responder=reference_reviewers(), faults=lambda index, body: FAULT_SCHEMA_VIOLATION) as server:
        draft = make_draft(server, settings.with_overrides(reasks=0), EXAMPLE_RUN)
    assert draft.tally().pairs[0].chair is None
    assert draft.pages == []  # panel writes no page for a run without a valid verdict; the template still copes
    draft.rerender()
    assert "override --persona chair" not in draft.html and "override --persona chair" not in draft.markdown
    assert "The chair has not read this run" in draft.html


def test_invalid_chair_override_needs_a_summary_and_renders_without_a_headline(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    with FakeOpenAI(responder=reference_responder({})) as server:  # never a valid chair summary
        draft = make_draft(server, settings.with_overrides(reasks=0), EXAMPLE_RUN)
    assert "override --persona chair --pair 1" in visible(draft.html)
    code, _, err = override(draft.settings, "--tool", SMOL, "--persona", "chair", "--verdict", "left", capsys=capsys)
    assert code == 2 and "--quote: the model gave no valid answer" in err
    code, _, err = override(
        draft.settings,
        "--tool",
        SMOL,
        "--persona",
        "chair",
        "--verdict",
        "left",
        "--quote",
        "On-device vision wins for most readers of this newsletter.",
        capsys=capsys,
    )
    assert code == 0, err
    tally = draft.tally()
    html = visible(render_html(tally, tally.pairs[0]))
    assert f"The panel would ship with {SMOL}" in html and "None" not in html


def test_override_while_another_process_writes_is_refused_in_one_line_and_stores_nothing(
    reviewed_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(db_path=tmp_path / "panel.duckdb", out_dir=tmp_path / "pages")
    shutil.copyfile(reviewed_db, settings.db_path)
    with writer_lock_held_elsewhere(settings.db_path):
        code, _, err = override(settings, "--tool", SMOL, "--persona", "business", "--verdict", "ship", capsys=capsys)
    assert code == 2 and err.count("\n") == 1 and "another panel run is writing this database (pid" in err, err
    store = Store(settings.db_path)
    assert store.overrides(store.resolve_run_id(None)) == [] and not settings.out_dir.exists()
    code, out, err = override(settings, "--tool", SMOL, "--persona", "business", "--verdict", "ship", capsys=capsys)
    assert code == 0 and "skip → ship" in out, err  # once the other writer is gone


def test_a_python_caller_meets_the_same_override_rules_without_the_cli(two_pairs: Draft) -> None:
    store, run_id = two_pairs.store, two_pairs.review.run_id
    with pytest.raises(OverrideError, match="'ship' is not a pick .use one of: left, right, both, neither."):
        apply_override(store, run_id, OverrideRequest("chair", "py", pair_number=1, verdict="ship"))
    with pytest.raises(OverrideError, match=f"'{SMOL}' is in pairs 1, 2"):
        apply_override(store, run_id, OverrideRequest("business", "py", SMOL, verdict="ship"))
    assert store.overrides(run_id) == []
    saved, target = apply_override(store, run_id, OverrideRequest("business", "py", SMOL, 2, verdict="ship"))
    assert (saved.pair_index, saved.verdict, target.subject) == (1, "ship", f"{SMOL} in pair 2")


def test_each_answer_kind_maps_its_own_fields_to_the_verdicts_row() -> None:
    summary = ChairSummary(
        pick="left",
        headline="Ship with the left tool",
        summary="The left tool serves teams that host their own models; the right one does not.",
    )
    assert not hasattr(summary, "verdict") and not hasattr(summary, "review")  # no reviewer fields faked
    assert kind_of(summary).row(summary) == AnswerRow("left", None, summary.headline, summary.summary, [])
    verdict = Verdict(
        verdict="skip",
        confidence=0.7,
        headline="Not for buyers",
        key_points=["no SLA"],
        review="The buyer here is a developer who needs an SLA, and this tool offers none at all.",
    )
    assert kind_of(Verdict).row(verdict) == AnswerRow("skip", 0.7, verdict.headline, verdict.review, ["no SLA"])
    assert (
        (kind_for("chair").choices, kind_for("business").choices)
        == (PICKS, VERDICTS)
        == (("left", "right", "both", "neither"), ("ship", "skip"))
    )
