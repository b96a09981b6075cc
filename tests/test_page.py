"""The editor's draft: the chair's summary, disagreement marks, editor overrides, and the Markdown export."""

from __future__ import annotations

import duckdb
import pytest

from panel.chair import summarize_run
from panel.cli import main
from panel.config import Settings
from panel.model.endpoint import Endpoint
from panel.render import markdown_escape
from panel.store import Store
from tests.fake_openai import FAULT_SCHEMA_VIOLATION, FakeOpenAI, load_reference_reviews, reference_responder
from tests.helpers import (
    EXAMPLE_RUN,
    chat_requests,
    make_draft,
    reference_labels_path,
    reference_reviewers,
    run_panel,
    visible,
)

SMOL, SONAR = "SmolVLM2-2B", "Perplexity Sonar Pro 2 API"
DESCRIPTION_WORDS = "without a cloud round-trip"  # from SmolVLM2-2B's vendor description


def reviews_with(**changes: dict) -> list[dict]:
    """The reference page's eight reviews with some rows changed, keyed 'tool|persona'."""
    rows = load_reference_reviews(reference_labels_path())
    return [{**row, **changes.get(f"{row['tool']}|{row['persona']}", {})} for row in rows]


def test_chair_summary_is_stored_like_a_verdict_and_reused_on_rerun(settings: Settings) -> None:
    with FakeOpenAI(responder=reference_reviewers()) as server:
        draft = make_draft(server, settings, EXAMPLE_RUN)
        assert (draft.chair.needed, draft.chair.cached, len(draft.chair.answers)) == (1, 0, 1)
        assert len(chat_requests(server)) == 9
        again = summarize_run(
            draft.store, draft.review.run_id, draft.settings, endpoint=Endpoint(server.base_url, embedded=False)
        )
        assert (again.needed, again.cached, again.answers) == (1, 1, [])
        assert len(chat_requests(server)) == 9
    with duckdb.connect(str(draft.store.path), read_only=True) as con:
        chair = con.execute("""SELECT v.verdict, v.valid, v.tool_id = i.tool_id, v.review FROM verdicts v
                               JOIN run_items i USING (cache_key) WHERE v.persona_id = 'chair'""").fetchall()
    assert chair == [("both", True, True, chair[0][3])] and "3 ship verdicts" in chair[0][3]
    tally = draft.tally()
    assert tally.personas == ["builder", "skeptic", "futurist", "business"]
    assert [side.ship_percent for side in tally.pairs[0].tools] == ["75%", "75%"]
    assert tally.pairs[0].pick == "both"


def test_chair_reads_the_reviewers_verdicts_never_the_vendor_description(settings: Settings) -> None:
    with FakeOpenAI(responder=reference_reviewers()) as server:
        make_draft(server, settings, EXAMPLE_RUN)
        system, user = chat_requests(server)[-1].body["messages"]
    assert system["role"] == "system" and SMOL not in system["content"] and SONAR not in system["content"]
    assert "BEGIN PANEL VERDICTS" in user["content"] and "business on right: skip, confidence 0.70" in user["content"]
    assert DESCRIPTION_WORDS not in user["content"] and "volume discounts" not in user["content"]


def test_chair_without_a_valid_answer_leaves_no_invented_summary(settings: Settings) -> None:
    labels_only = reference_responder({})  # answers verdict-shaped JSON to the chair too: never a valid summary
    with FakeOpenAI(responder=labels_only) as server:
        draft = make_draft(server, settings.with_overrides(reasks=1), EXAMPLE_RUN)
    assert draft.chair.failed == 1 and len(draft.chair.answers[0].attempts) == 2
    assert "No panel summary yet" in draft.html and "did not validate after 2 attempts" in draft.html
    assert "No panel summary yet" in draft.markdown and draft.tally().pairs[0].pick is None


def test_chair_stays_within_the_run_request_budget(settings: Settings) -> None:
    with FakeOpenAI(responder=reference_reviewers()) as server:
        draft = make_draft(server, settings.with_overrides(max_requests=8), EXAMPLE_RUN)
        assert len(chat_requests(server)) == 8
    assert draft.review.status == "finished" and draft.chair.answers == []
    assert "The chair has not read this run" in draft.html


def test_page_marks_a_split_a_doubting_verdict_and_a_reasked_answer(settings: Settings) -> None:
    rows = reviews_with(**{f"{SMOL}|futurist": {"verdict": "skip"}, f"{SONAR}|skeptic": {"confidence": 0.3}})
    # The first request (the builder on SmolVLM2-2B) gets schema-breaking JSON, so that answer is re-asked.
    with FakeOpenAI(responder=reference_reviewers(rows), faults=[FAULT_SCHEMA_VIOLATION]) as server:
        draft = make_draft(server, settings.with_overrides(concurrency=1), EXAMPLE_RUN)
    html, md = visible(draft.html), draft.markdown
    assert "SmolVLM2-2B: the panel splits 2–2 — no majority either way." in html
    assert "Split 2–2" in html and "Panel split 2–2" in html and "50%" in html
    assert "The skeptic says ship on Perplexity Sonar Pro 2 API with confidence 0.30" in html
    assert "Confidence contradicts the verdict" in html
    assert "The builder on SmolVLM2-2B: the answer needed 2 attempts before it validated." in html
    assert "Needed 2 attempts" in html
    assert "the panel splits 2–2" in md and "confidence contradicts the verdict" in md
    assert "needed 2 attempts" in md
    kinds = [(d.kind, d.tool.tool.name, d.persona_id) for d in draft.tally().pairs[0].disagreements]
    assert kinds == [("split", SMOL, None), ("reasked", SMOL, "builder"), ("contradiction", SONAR, "skeptic")]


def test_unanimous_confident_first_time_panel_shows_no_disagreement(settings: Settings) -> None:
    with FakeOpenAI(responder=reference_reviewers()) as server:
        draft = make_draft(server, settings, EXAMPLE_RUN)
    assert draft.tally().pairs[0].disagreements == []
    assert "Where the panel disagrees" not in draft.html and "Split 2" not in draft.html


def test_override_from_the_cli_changes_the_page_and_keeps_the_model_verdict(settings: Settings) -> None:
    with FakeOpenAI(responder=reference_reviewers()) as server:
        draft = make_draft(server, settings, EXAMPLE_RUN)
    db, out = str(settings.db_path), str(settings.out_dir)
    changed = run_panel(
        "override",
        "--tool",
        "smolvlm2-2b",
        "--persona",
        "business",
        "--verdict",
        "ship",
        "--note",
        "free weights are the point",
        "--editor",
        "alice",
        "--db",
        db,
        "--out",
        out,
    )
    assert changed.returncode == 0, changed.stderr
    assert "business on SmolVLM2-2B: skip → ship (by alice)" in changed.stdout
    html = visible(draft.pages[0].read_text(encoding="utf-8"))
    assert "100%" in html and "Edited by alice" in html
    assert "the model said skip, the page says ship" in html and "The model's verdict was skip" in html
    with duckdb.connect(str(settings.db_path), read_only=True) as con:
        stored = con.execute(
            """SELECT verdict FROM verdicts v JOIN tools t USING (tool_id)
                                WHERE t.name = ? AND persona_id = 'business'""",
            [SMOL],
        ).fetchall()
        override = con.execute("SELECT verdict, editor, note FROM overrides").fetchall()
    assert stored == [("skip",)] and override == [("ship", "alice", "free weights are the point")]
    listed = run_panel("overrides", "--db", db)
    assert listed.returncode == 0 and "alice" in listed.stdout and "skip" in listed.stdout


def test_quote_edit_keeps_an_earlier_verdict_edit_and_revert_restores_the_model(settings: Settings) -> None:
    with FakeOpenAI(responder=reference_reviewers()) as server:
        draft = make_draft(server, settings, EXAMPLE_RUN)
    store, run_id = draft.store, draft.review.run_id
    tool_id = draft.tally().pairs[0].left.tool_id
    store.add_override(run_id, tool_id, "business", "alice", pair_index=0, verdict="ship")
    store.add_override(
        run_id, tool_id, "business", "bob", pair_index=0, review="Edited: free weights are a distribution play."
    )
    verdict = draft.tally().pairs[0].left.verdicts["business"]
    assert (verdict.verdict, verdict.review, verdict.override_editor) == (
        "ship",
        "Edited: free weights are a distribution play.",
        "bob",
    )
    assert verdict.model_verdict == "skip" and verdict.model_review.startswith("The buyer here is a developer")
    store.add_override(run_id, tool_id, "business", "carol", pair_index=0, revert=True)
    verdict = draft.tally().pairs[0].left.verdicts["business"]
    assert (verdict.verdict, verdict.overridden) == ("skip", False)
    assert [(o.editor, o.verdict) for o in store.overrides(run_id)] == [
        ("alice", "ship"),
        ("bob", "ship"),
        ("carol", None),
    ]


def test_summary_is_marked_stale_after_a_verdict_edit_until_the_chair_reads_it(settings: Settings) -> None:
    with FakeOpenAI(responder=reference_reviewers()) as server:
        draft = make_draft(server, settings, EXAMPLE_RUN)
        draft.store.add_override(
            draft.review.run_id, draft.tally().pairs[0].right.tool_id, "business", "alice", pair_index=0, verdict="ship"
        )
        draft.rerender()
        assert draft.tally().pairs[0].chair_predates_edits and "rerun <code>panel review</code>" in draft.html
        summarize_run(
            draft.store, draft.review.run_id, draft.settings, endpoint=Endpoint(server.base_url, embedded=False)
        )
        assert "business on right: ship" in chat_requests(server)[-1].body["messages"][1]["content"]
    draft.rerender()
    assert not draft.tally().pairs[0].chair_predates_edits
    assert "The panel would ship with Perplexity Sonar Pro 2 API" in draft.html


def test_editor_can_rewrite_the_chair_summary_and_pick(settings: Settings) -> None:
    with FakeOpenAI(responder=reference_reviewers()) as server:
        draft = make_draft(server, settings, EXAMPLE_RUN)
    result = run_panel(
        "override",
        "--tool",
        SONAR,
        "--persona",
        "chair",
        "--verdict",
        "left",
        "--quote",
        "On-device vision wins for most readers.",
        "--editor",
        "ed",
        "--db",
        str(settings.db_path),
        "--out",
        str(settings.out_dir),
    )
    assert result.returncode == 0, result.stderr
    html = draft.pages[0].read_text(encoding="utf-8")
    assert "The panel would ship with SmolVLM2-2B" in html and "On-device vision wins for most readers." in html
    assert "then edited by ed" in html


def test_override_mistakes_are_one_line_errors(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    with FakeOpenAI(responder=reference_reviewers()) as server:
        make_draft(server, settings, EXAMPLE_RUN)
    db = str(settings.db_path)
    for args, message in [
        (["--tool", "nope", "--persona", "business", "--verdict", "ship"], "has no tool 'nope'"),
        (["--tool", SMOL, "--persona", "business", "--verdict", "maybe"], "'maybe' is not a verdict"),
        (["--tool", SMOL, "--persona", "chair", "--verdict", "ship"], "'ship' is not a pick"),
        (["--tool", SMOL, "--persona", "nobody", "--verdict", "ship"], "no verdict by 'nobody'"),
        (["--tool", SMOL, "--persona", "business"], "nothing to change"),
        (["--tool", SMOL, "--persona", "business", "--quote", "x" * 3001], "3001 characters"),
    ]:
        # In process (main() as the installed command runs it): six subprocesses would take seconds.
        with pytest.raises(SystemExit) as exited:
            main(["override", *args, "--db", db])
        stderr = capsys.readouterr().err
        assert exited.value.code == 2 and message in stderr, (args, stderr)
        assert stderr.strip().count("\n") == 0 and "Traceback" not in stderr
    assert Store(settings.db_path).overrides(Store(settings.db_path).resolve_run_id(None)) == []


def test_markdown_export_carries_the_pages_sections_in_the_same_order(settings: Settings) -> None:
    with FakeOpenAI(responder=reference_reviewers()) as server:
        draft = make_draft(server, settings, EXAMPLE_RUN)
    md, html = draft.markdown, visible(draft.html)
    sections = [
        "AI tool comparison",
        "Panel verdict",
        f"## {SMOL}",
        f"## {SONAR}",
        "Pricing read",
        "Reviewer scorecard",
        "### The builder",
        "### The business analyst",
        "Weekly AI Tool Verdicts",
        "Draft generated by panel",
    ]
    starts = [md.index(section) for section in sections]
    assert starts == sorted(starts)
    for figure in (
        "75%",
        "— | Free",
        "— | Paid",
        "ship — builder, skeptic, futurist; skip — business",
        "$250 just in API costs",
        "[homepage](<https://huggingface.co/",
    ):
        assert figure in md, figure
    for quote in load_reference_reviews(reference_labels_path()):
        assert quote["review"][:60] in html
        assert markdown_escape(quote["review"]) in md


def test_pages_name_the_model_run_and_prompt_versions(settings: Settings) -> None:
    with FakeOpenAI(responder=reference_reviewers()) as server:
        draft = make_draft(server, settings, EXAMPLE_RUN)
    run = draft.store.load_run(draft.review.run_id)
    for persona_id, content_hash in run.persona_hashes.items():
        assert f"{persona_id} <code>{content_hash[:8]}</code>" in draft.html
        assert f"{persona_id} {content_hash[:8]}" in draft.markdown
    assert f"run <code>{run.run_id}</code> · model fake-model" in draft.html
    assert set(run.persona_hashes) == {"builder", "skeptic", "futurist", "business", "chair"}
