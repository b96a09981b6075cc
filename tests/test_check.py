"""`panel check`: order-swapped and name-blinded re-asks, self-contradicting verdicts, ship rate vs labelled rate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from panel.cards import load_run
from panel.config import Settings
from panel.consistency import BLINDED, SWAPPED, blind_pair, check, contradiction, stated_verdict, swap_blocks
from panel.labels import import_labels
from panel.personas import build_messages, load_personas, load_templates
from panel.store import AnsweredVerdict, Store
from panel.verdict import verdict_schema
from tests.fake_openai import FakeOpenAI, load_reference_labels, reference_responder
from tests.helpers import EXAMPLE_RUN, PROJECT_ROOT, chat_requests, reference_labels_path
from tests.persona_edit import persona_and_tool, shown_first

PERSONAS = ["builder", "skeptic", "futurist", "business"]
OLDER_USER_TEMPLATE = """Give your verdict.

BEGIN TOOL UNDER REVIEW
Name: {{ tool.name }}
Tagline: {{ tool.tagline | quoted }}
END TOOL UNDER REVIEW

BEGIN RIVAL TOOL
Name: {{ rival.name }}
END RIVAL TOOL

Reply with the JSON object only."""


def fickle_responder(body: dict[str, Any]) -> str:
    """builder: always ship. skeptic: ship only when the tool's card is shown before its rival's (in the pair
    layout, the left tool of a plain run and the right tool of a swapped one). futurist: skip a blinded
    'Tool A/B'. business: skip, with a review that ends by saying ship (a self-contradiction)."""
    persona, tool, _ = persona_and_tool(body)
    review = f"{tool} was weighed from the {persona} seat against its rival on the stated evidence."
    verdict = "ship"
    if persona == "skeptic" and not shown_first(body):
        verdict = "skip"
    if persona == "futurist" and tool.startswith("Tool "):
        verdict = "skip"
    if persona == "business":
        verdict, review = "skip", review + " The buyer is clear, so ship it."
    return json.dumps(
        {
            "verdict": verdict,
            "confidence": 0.8,
            "headline": f"{persona} on {tool}",
            "review": review,
            "key_points": ["scripted"],
        }
    )


@pytest.fixture
def labelled(settings: Settings) -> Settings:
    """Settings with the reference page's 8 labels imported (business skip; everyone else ship)."""
    import_labels(Store(settings.db_path), reference_labels_path(), "reference", PERSONAS)
    return settings.with_overrides(model="fake-model")


def test_stated_verdict_reads_the_concluding_sentence() -> None:
    assert stated_verdict("Strong launch. Ships now because the release discipline is real.") == "ship"
    assert stated_verdict("Good docs. I would not ship this yet.") == "skip"
    assert stated_verdict("Ships as a technical artifact, skips as a business foundation.") is None
    assert stated_verdict("A flagship relationship with shipping partners.") is None
    for line in reference_labels_path().read_text(encoding="utf-8").splitlines():
        row = json.loads(line)  # the published reviews never contradict their own verdicts
        answer = AnsweredVerdict("k", row["verdict"], 0.8, "headline", row["review"], True, 0, 0)
        assert contradiction(answer) is None, row["review"][-120:]
    low = AnsweredVerdict("k", "ship", 0.3, "h", "Fine.", True, 0, 0)
    assert contradiction(low) == "confidence 0.30 is below 0.5 for a ship"


def test_swapping_trades_the_two_cards_and_blinding_hides_both_names() -> None:
    spec = load_run(EXAMPLE_RUN)
    persona = load_personas(PROJECT_ROOT / "personas")[0]
    templates = load_templates(PROJECT_ROOT / "prompts")
    left, right = spec.pairs[0].tools
    messages = build_messages(persona, templates, left, right, verdict_schema())
    swapped = swap_blocks(messages)
    user = swapped[1]["content"]
    assert user.index("BEGIN FIRST TOOL") < user.index(f"Name: {right.name}") < user.index("BEGIN SECOND TOOL")
    assert user.index("BEGIN SECOND TOOL") < user.index(f"Name: {left.name}") < user.index("BEGIN TOOL UNDER REVIEW")
    assert user.endswith(messages[1]["content"][messages[1]["content"].index("BEGIN TOOL UNDER REVIEW") :])
    assert sorted(user.splitlines()) == sorted(messages[1]["content"].splitlines()) and swapped[0] == messages[0]
    blind = blind_pair(spec.pairs[0])
    blinded = build_messages(persona, templates, *blind.tools, verdict_schema())[1]["content"]
    assert "Name: Tool A" in blinded and "Name: Tool B" in blinded
    for leak in ("SmolVLM2", "Perplexity", "Sonar"):
        assert leak.lower() not in blinded.lower(), leak


def test_swapping_also_reads_the_older_layout_of_a_projects_own_templates(tmp_path: Path) -> None:
    """A project made before the pair layout keeps its user.j2: tool under review first, then a RIVAL TOOL block."""
    (tmp_path / "system.j2").write_text((PROJECT_ROOT / "prompts" / "system.j2").read_text(), encoding="utf-8")
    (tmp_path / "user.j2").write_text(OLDER_USER_TEMPLATE, encoding="utf-8")
    spec = load_run(EXAMPLE_RUN)
    persona = load_personas(PROJECT_ROOT / "personas")[0]
    messages = build_messages(persona, load_templates(tmp_path), *spec.pairs[0].tools, verdict_schema())
    user = swap_blocks(messages)[1]["content"]
    assert user.index("BEGIN RIVAL TOOL") < user.index("END RIVAL TOOL") < user.index("BEGIN TOOL UNDER REVIEW")
    assert sorted(user.splitlines()) == sorted(messages[1]["content"].splitlines())


def test_check_reports_exact_flip_rates_contradictions_and_base_rates(labelled: Settings) -> None:
    with FakeOpenAI(responder=fickle_responder) as server:
        settings = labelled.with_overrides(base_url=server.base_url)
        report = check(EXAMPLE_RUN, settings, Store(settings.db_path))
        assert report.requests == len(chat_requests(server)) == 8 + 8 + 8
        again = check(EXAMPLE_RUN, settings, Store(settings.db_path))
        assert again.requests == 0 and len(chat_requests(server)) == 24
    by_id = {p.persona_id: p for p in report.personas}
    assert {p: (by_id[p].flips[SWAPPED], by_id[p].flips[BLINDED]) for p in PERSONAS} == {
        "builder": ((0, 2), (0, 2)),
        "skeptic": ((2, 2), (0, 2)),
        "futurist": ((0, 2), (2, 2)),
        "business": ((0, 2), (0, 2)),
    }
    assert [len(by_id[p].contradictions) for p in PERSONAS] == [0, 0, 0, 2]
    assert by_id["business"].contradictions[0][1] == "the review says ship but the verdict is skip"
    assert {p: (by_id[p].ship_rate, by_id[p].base_rate) for p in PERSONAS} == {
        "builder": (1.0, 1.0),
        "skeptic": (0.5, 1.0),
        "futurist": (1.0, 1.0),
        "business": (0.0, 0.0),
    }
    assert (report.panel_ship_rate, report.panel_base_rate) == (0.625, 0.75)
    assert {p: by_id[p].problems for p in PERSONAS} == {
        "builder": [],
        "skeptic": ["swapped flip rate 100% is over 25%", "ship rate 50% vs labelled base rate 100%"],
        "futurist": ["blinded flip rate 100% is over 25%"],
        "business": ["2 verdict(s) contradict their own label"],
    }
    assert report.problems == [] and report.failed


def test_a_panel_that_ships_everything_fails(labelled: Settings) -> None:
    with FakeOpenAI(responder=reference_responder({})) as server:  # says ship to every tool
        report = check(EXAMPLE_RUN, labelled.with_overrides(base_url=server.base_url), Store(labelled.db_path))
    business = next(p for p in report.personas if p.persona_id == "business")
    assert business.problems == ["ships everything while the labels ship 0%"]
    assert report.problems == ["ships everything while the labels ship 75%"]
    assert report.failed


def test_a_panel_matching_the_labels_passes(labelled: Settings) -> None:
    responder = reference_responder(load_reference_labels(reference_labels_path()))
    with FakeOpenAI(responder=responder) as server:
        report = check(
            EXAMPLE_RUN, labelled.with_overrides(base_url=server.base_url), Store(labelled.db_path), sample=3, seed=1
        )
        assert len(chat_requests(server)) == 8 + 3 + 3
    assert sum(p.flips[SWAPPED][1] for p in report.personas) == 3
    assert not report.failed


def test_cli_check_exits_1_on_failure_and_prints_the_table(labelled: Settings) -> None:
    from tests.helpers import run_panel

    with FakeOpenAI(responder=fickle_responder) as server:
        result = run_panel(
            "check",
            str(EXAMPLE_RUN),
            "--base-url",
            server.base_url,
            "--model",
            "fake-model",
            "--db",
            str(labelled.db_path),
        )
    assert result.returncode == 1, result.stderr
    assert "2/2 (100%)" in result.stdout and "swapped flip rate 100% is over 25%" in result.stdout
    assert "panel ship rate 62% vs labelled base rate 75%" in result.stdout
