"""What panel prints: vendor, model and user text reaches the terminal as written, never as rich markup,
emoji, a live link or an escape sequence; `panel sql` output keeps none of the model's control characters."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fake_openai import FakeOpenAI, chair_responder, reference_responder
from tests.helpers import PROJECT_ROOT, run_panel

BRACKETED = "Tool [/bold] x"  # a closing tag with nothing open: rich raises MarkupError when it parses it
LINKED = "[link=https://evil.example]x[/link]"  # parsed as markup, an OSC-8 hyperlink on a terminal
# A reply with a hidden hyperlink, a right-to-left override, a screen clear and an 8-bit CSI.
HOSTILE = " \x1b]8;;https://evil.example\x1b\\click here\x1b]8;;\x1b\\ \u202edesrever\u202c \x1b[2J\x9b31m the end."
HIDDEN = ("\x1b", "\x9b", "\u202e", "\u202c")
# rich writes colour and links only to what it takes for a terminal; this makes it take a pipe for one.
TERMINAL = {"FORCE_COLOR": "1", "TERM": "xterm-256color"}


def hostile_model(body: dict[str, Any]) -> str:
    """The fake's usual answers, with HOSTILE added to every review and to the chair's summary."""
    reply = json.loads(chair_responder(reference_responder({}))(body))
    for key in ("review", "summary"):
        if key in reply:
            reply[key] += HOSTILE
    return json.dumps(reply)


@pytest.fixture(scope="module")
def reviewed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A database holding a run of the two bracket-named tools, reviewed by the hostile model; and review's stdout."""
    folder = tmp_path_factory.mktemp("terminal")
    card = yaml.safe_load((PROJECT_ROOT / "runs" / "cards" / "smolvlm2-2b.yaml").read_text(encoding="utf-8"))
    run_file = folder / "brackets.yaml"
    run_file.write_text(
        yaml.safe_dump({"title": "brackets", "pairs": [[dict(card, name=BRACKETED), dict(card, name=LINKED)]]}),
        encoding="utf-8",
    )
    db = folder / "panel.duckdb"
    with FakeOpenAI(responder=hostile_model) as server:
        result = run_panel(
            "review",
            str(run_file),
            "--base-url",
            server.base_url,
            "--db",
            str(db),
            "--out",
            str(folder / "pages"),
            env_extra=TERMINAL,
        )
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    return db, result.stdout


def assert_printed_literally(output: str) -> None:
    assert BRACKETED in output and LINKED in output
    assert "\x1b]8;" not in output  # no hyperlink, live or hidden


def test_review_prints_bracketed_tool_names_literally_and_links_none(reviewed: tuple[Path, str]) -> None:
    stdout = reviewed[1]
    assert_printed_literally(stdout)


def test_render_prints_bracketed_tool_names_literally(reviewed: tuple[Path, str], tmp_path: Path) -> None:
    result = run_panel("render", "--db", str(reviewed[0]), "--out", str(tmp_path), env_extra=TERMINAL)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert_printed_literally(result.stdout)


def test_override_and_overrides_print_bracketed_names_and_notes_literally(
    reviewed: tuple[Path, str], tmp_path: Path
) -> None:
    db = tmp_path / "panel.duckdb"
    db.write_bytes(reviewed[0].read_bytes())
    note = "see [bold]this[/bold] :x: \x1b]8;;https://evil.example\x1b\\here\x1b]8;;\x1b\\"
    for tool in (BRACKETED, LINKED):
        result = run_panel(
            "override",
            "--tool",
            tool,
            "--persona",
            "business",
            "--verdict",
            "skip",
            "--note",
            note,
            "--editor",
            "[red]ed[/red]",
            "--db",
            str(db),
            "--out",
            str(tmp_path),
            env_extra=TERMINAL,
        )
        assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
        assert f"business on {tool}: ship → skip (by [red]ed[/red])" in result.stdout
    listed = run_panel("overrides", "--db", str(db), env_extra=TERMINAL)
    assert listed.returncode == 0, listed.stderr
    assert_printed_literally(listed.stdout)
    assert "[red]ed[/red]" in listed.stdout and "see [bold]this[/bold] :x: here" in listed.stdout
    assert "❌" not in listed.stdout


def test_an_error_message_with_an_emoji_code_prints_the_code(reviewed: tuple[Path, str]) -> None:
    result = run_panel(
        "override",
        "--tool",
        ":x: [bold]",
        "--persona",
        "business",
        "--verdict",
        "skip",
        "--db",
        str(reviewed[0]),
        env_extra=TERMINAL,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and "no tool ':x: [bold]'" in result.stderr
    assert "❌" not in result.stderr and "\x1b]8;" not in result.stderr


REVIEWS = (
    "SELECT r.tool_name, v.review FROM run_verdicts r JOIN verdicts v USING (verdict_id) "
    "ORDER BY r.tool_name, r.persona_id"
)


@pytest.mark.parametrize("layout", ["table", "vertical"])
def test_sql_table_shows_model_text_without_its_control_characters(reviewed: tuple[Path, str], layout: str) -> None:
    result = run_panel("sql", REVIEWS, "--format", layout, "--db", str(reviewed[0]))
    assert result.returncode == 0, result.stderr
    assert not [c for c in HIDDEN if c in result.stdout]
    assert "click here" in result.stdout and "desrever" in result.stdout and LINKED in result.stdout


def test_sql_csv_shows_model_text_without_its_control_characters(reviewed: tuple[Path, str]) -> None:
    result = run_panel("sql", REVIEWS, "--format", "csv", "--db", str(reviewed[0]))
    assert result.returncode == 0, result.stderr
    assert not [c for c in HIDDEN if c in result.stdout]
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 8
    assert all(row["review"].endswith(" click here desrever  the end.") for row in rows), rows[0]


def test_sql_json_keeps_the_exact_model_text_as_json_escapes(reviewed: tuple[Path, str]) -> None:
    result = run_panel("sql", REVIEWS, "--format", "json", "--db", str(reviewed[0]))
    assert result.returncode == 0, result.stderr
    assert not [c for c in HIDDEN if c in result.stdout]  # written as \u001b, \u009b, \u202e
    rows = json.loads(result.stdout)
    assert len(rows) == 8 and all(row["review"].endswith(HOSTILE) for row in rows)
