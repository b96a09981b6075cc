"""`panel compare`: a persona edit run over stored pairs shows exactly which verdicts flip and how agreement moves."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from panel.agreement import accuracy, balanced_accuracy, cohen_kappa
from panel.compare import compare
from panel.compare_report import render_compare_html
from panel.config import Settings
from panel.errors import CompareError, EndpointError
from panel.store import Store
from tests.fake_openai import FAULT_401, FakeOpenAI
from tests.helpers import chat_requests, run_panel
from tests.persona_edit import edit_skeptic, reviewed, strict_skeptic_responder, write_six_tool_run


def test_agreement_statistics_match_hand_computed_values() -> None:
    gold = ["ship", "ship", "ship", "skip", "skip", "skip"]
    after = ["ship", "ship", "skip", "skip", "skip", "ship"]
    assert accuracy(gold, after) == pytest.approx(4 / 6)
    assert balanced_accuracy(gold, after) == pytest.approx(2 / 3)
    assert cohen_kappa(gold, after) == pytest.approx(1 / 3)
    always_ship = ["ship"] * 6
    assert (accuracy(gold, always_ship), balanced_accuracy(gold, always_ship), cohen_kappa(gold, always_ship)) == (
        0.5,
        0.5,
        0.0,
    )
    assert cohen_kappa(["ship", "ship"], ["ship", "ship"]) is None  # undefined, not a perfect score
    assert accuracy([], []) is None
    with pytest.raises(ValueError):
        accuracy(["ship"], [])


def test_a_refused_key_stops_compare_at_its_first_request(workspace: Settings, tmp_path: Path) -> None:
    run_file = write_six_tool_run(tmp_path)
    with FakeOpenAI(responder=strict_skeptic_responder) as server:
        settings = reviewed(server, workspace, run_file)
        edit_skeptic(settings)
        server.faults = lambda index, body: FAULT_401  # the same endpoint, now refusing the key
        with pytest.raises(EndpointError, match="OPENAI_API_KEY"):
            compare([run_file], settings, Store(settings.db_path))
        assert len(chat_requests(server)) == 24 + 1


def test_skeptic_edit_shows_exact_flips_and_agreement_before_and_after(workspace: Settings, tmp_path: Path) -> None:
    run_file = write_six_tool_run(tmp_path)
    with FakeOpenAI(responder=strict_skeptic_responder) as server:
        settings = reviewed(server, workspace, run_file)
        assert len(chat_requests(server)) == 24
        edit_skeptic(settings)
        priced = settings.with_overrides(price_input=1000.0, price_output=2000.0)  # USD per million: 1 and 2 per 1k
        result = compare([run_file], priced, Store(settings.db_path))
        # The old skeptic's answers come from the cache; only the edited skeptic is asked, once per tool.
        assert result.requests == {"before": 0, "after": 6}
        assert len(chat_requests(server)) == 30
    assert result.personas == ["skeptic"]
    assert [(f.tool_name, f.before.verdict, f.after.verdict) for f in result.flips] == [
        ("Charlie", "ship", "skip"),
        ("Delta", "ship", "skip"),
        ("Echo", "ship", "skip"),
    ]
    before, after = result.before["skeptic"], result.after["skeptic"]
    assert (before.ship_rate, after.ship_rate) == (1.0, 0.5)
    assert (before.labelled, after.labelled) == (6, 6)
    assert (before.accuracy, before.balanced_accuracy, before.kappa) == (0.5, 0.5, 0.0)
    assert after.accuracy == pytest.approx(4 / 6)
    assert after.balanced_accuracy == pytest.approx(2 / 3)
    assert after.kappa == pytest.approx(1 / 3)
    assert (before.mean_confidence, after.mean_confidence) == (pytest.approx(0.8), pytest.approx(0.7))
    prompt = sum(item.after.prompt_tokens for item in result.items)
    completion = sum(item.after.completion_tokens for item in result.items)
    assert after.tokens == prompt + completion > 0
    assert after.cost == pytest.approx(prompt / 1000 * 1.0 + completion / 1000 * 2.0)
    # What the comparison spent: the six edited-skeptic answers it asked (the old side came from the cache).
    assert (result.spent.prompt_tokens, result.spent.completion_tokens) == (prompt, completion)
    assert result.spent.usd == pytest.approx(after.cost)
    [(name, old, new)] = result.changes()
    assert name == "skeptic" and old.startswith("stored ") and new.startswith("working tree ")


def test_rerunning_a_compare_makes_no_model_calls(workspace: Settings, tmp_path: Path) -> None:
    run_file = write_six_tool_run(tmp_path)
    with FakeOpenAI(responder=strict_skeptic_responder) as server:
        settings = reviewed(server, workspace, run_file)
        edit_skeptic(settings)
        first = compare([run_file], settings, Store(settings.db_path), persona_ids=["skeptic"])
        calls = len(chat_requests(server))
        # Compare against the version the first compare stored: pass the old one explicitly.
        old_hash = first.base.persona_hash("skeptic")
        again = compare([run_file], settings, Store(settings.db_path), base_refs=[old_hash[:10]])
        assert len(chat_requests(server)) == calls
    assert again.requests == {"before": 0, "after": 0}
    assert [f.tool_name for f in again.flips] == ["Charlie", "Delta", "Echo"]


def test_two_stored_versions_compare_without_the_working_tree(workspace: Settings, tmp_path: Path) -> None:
    run_file = write_six_tool_run(tmp_path)
    skeptic = Path(workspace.personas_dir) / "skeptic.md"
    original = skeptic.read_text(encoding="utf-8")
    with FakeOpenAI(responder=strict_skeptic_responder) as server:
        settings = reviewed(server, workspace, run_file)
        edit_skeptic(settings)
        first = compare([run_file], settings, Store(settings.db_path))
        skeptic.write_text(original, encoding="utf-8")  # the working tree goes back to the old text
        calls = len(chat_requests(server))
        old, new = first.base.persona_hash("skeptic"), first.candidate.persona_hash("skeptic")
        reverse = compare([run_file], settings, Store(settings.db_path), base_refs=[new[:8]], candidate_refs=[old[:8]])
        assert len(chat_requests(server)) == calls
    assert [(f.tool_name, f.before.verdict, f.after.verdict) for f in reverse.flips] == [
        ("Charlie", "skip", "ship"),
        ("Delta", "skip", "ship"),
        ("Echo", "skip", "ship"),
    ]
    assert reverse.after["skeptic"].kappa == 0.0 and reverse.before["skeptic"].kappa == pytest.approx(1 / 3)


def test_nothing_changed_is_a_clear_error(workspace: Settings, tmp_path: Path) -> None:
    run_file = write_six_tool_run(tmp_path)
    with FakeOpenAI(responder=strict_skeptic_responder) as server:
        settings = reviewed(server, workspace, run_file)
        with pytest.raises(CompareError, match="nothing changed"):
            compare([run_file], settings, Store(settings.db_path))
        with pytest.raises(CompareError, match="no stored persona or templates version starts with 'ffffffff'"):
            compare([run_file], settings, Store(settings.db_path), base_refs=["ffffffff"])


def test_html_report_escapes_model_text_and_lists_both_reviews(workspace: Settings, tmp_path: Path) -> None:
    run_file = write_six_tool_run(tmp_path)
    with FakeOpenAI(responder=strict_skeptic_responder) as server:
        settings = reviewed(server, workspace, run_file)
        edit_skeptic(settings)
        html = render_compare_html(compare([run_file], settings, Store(settings.db_path)))
    assert "<script" not in html and "&lt;script&gt;alert(" in html
    assert "Content-Security-Policy" in html
    assert "Verdicts that flipped (3)" in html
    assert html.count("clears the scripted bar") == 3 and html.count("Skip: the edge is not proven") == 3
    assert "+STRICT-MARKER" in html  # the diff of the persona edit


def cli_compare(
    responder: Callable[[dict[str, Any]], str],
    workspace: Settings,
    tmp_path: Path,
    env_extra: dict[str, str] | None = None,
) -> tuple[subprocess.CompletedProcess, Path]:
    """`panel compare` of the skeptic edit over the six-tool run, answered by `responder`; and its report's path."""
    run_file = write_six_tool_run(tmp_path)
    with FakeOpenAI(responder=responder) as server:
        settings = reviewed(server, workspace, run_file)
        edit_skeptic(settings)
        report = tmp_path / "report.html"
        result = run_panel(
            "compare",
            str(run_file),
            "--personas-dir",
            str(settings.personas_dir),
            "--base-url",
            server.base_url,
            "--model",
            "fake-model",
            "--db",
            str(settings.db_path),
            "--html",
            str(report),
            env_extra=env_extra,
        )
    return result, report


def test_cli_compare_prints_the_table_and_writes_the_report(workspace: Settings, tmp_path: Path) -> None:
    result, report = cli_compare(strict_skeptic_responder, workspace, tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "requests: before 0, after 6" in out
    assert "3 verdict(s) flipped" in out
    row = next(line for line in out.splitlines() if line.startswith("│ skeptic"))
    for cell in ("3 of 6", "100% → 50%", "0.50 → 0.67", "0.00 → 0.33", "6 → 6", "0.80 → 0.70"):
        assert cell in row, (cell, row)
    assert "skeptic on Delta (label: skip): ship → skip" in out
    assert report.exists() and "<script" not in report.read_text()


def test_personas_lists_every_version_with_its_use_and_keeps_old_text(workspace: Settings, tmp_path: Path) -> None:
    run_file = write_six_tool_run(tmp_path)
    skeptic = Path(workspace.personas_dir) / "skeptic.md"
    original = skeptic.read_text(encoding="utf-8")
    with FakeOpenAI(responder=strict_skeptic_responder) as server:
        settings = reviewed(server, workspace, run_file)
        edit_skeptic(settings)
        result = compare([run_file], settings, Store(settings.db_path))
    old, new = result.base.persona_hash("skeptic"), result.candidate.persona_hash("skeptic")
    versions = {v.content_hash: v for v in Store(settings.db_path).prompt_versions() if v.name == "skeptic"}
    assert set(versions) == {old, new}
    assert (versions[old].verdict_count, versions[new].verdict_count) == (6, 6)
    assert versions[old].first_used_at < versions[new].first_used_at
    listed = run_panel("personas", "--personas-dir", str(settings.personas_dir), "--db", str(settings.db_path))
    rows = [line for line in listed.stdout.splitlines() if "skeptic" in line]
    assert len(rows) == 2 and old[:12] in rows[0] and new[:12] in rows[1] and "*" in rows[1] and "*" not in rows[0]
    shown = run_panel("personas", "--show", old[:10], "--db", str(settings.db_path))
    assert shown.stdout.rstrip("\n") == original.rstrip("\n")


# A hidden hyperlink, a right-to-left override, a screen clear and an 8-bit CSI, as a model might write them.
CONTROL_TEXT = " \x1b]8;;https://evil.example\x1b\\click here\x1b]8;;\x1b\\ \u202edesrever\u202c \x1b[2J\x9b31m end."


def control_character_responder(body: dict[str, Any]) -> str:
    """The strict skeptic, whose headlines and reviews carry CONTROL_TEXT."""
    reply = json.loads(strict_skeptic_responder(body))
    reply["headline"] += CONTROL_TEXT
    reply["review"] += CONTROL_TEXT
    return json.dumps(reply)


def test_report_and_terminal_show_model_text_without_its_control_characters(
    workspace: Settings, tmp_path: Path
) -> None:
    result, report = cli_compare(control_character_responder, workspace, tmp_path, env_extra={"FORCE_COLOR": "1"})
    assert result.returncode == 0, result.stderr
    html = report.read_text(encoding="utf-8")
    assert not [c for c in ("\x1b", "\x9b", "\u202e", "\u202c") if c in html]
    assert html.count("click here desrever  end.") == 12  # headline and review, before and after, 3 flips
    # The terminal is told to show colour, so it has escapes of its own, but none from the model.
    assert "\u202e" not in result.stdout and "\x1b]8;" not in result.stdout and "\x1b[2J" not in result.stdout
    assert "click here desrever  end." in result.stdout
