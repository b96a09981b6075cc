"""`panel sql` output a person can read: CSV when piped, a table that fits the terminal, else one record at a time."""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from panel.cli import app
from panel.warehouse import run_query
from tests.helpers import PANEL

SGR = re.compile(r"\x1b\[[0-9;]*m")  # rich's own colours and bold; any other escape would be a leak


def terminal(*args: str, columns: int) -> str:
    """What `panel` prints on a terminal `columns` wide (FORCE_COLOR: rich takes the pipe for one), uncoloured."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "PANEL_"))}
    env.update(FORCE_COLOR="1", TERM="xterm-256color", COLUMNS=str(columns))
    result = subprocess.run([*PANEL, *args], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    return SGR.sub("", result.stdout)


@pytest.fixture
def db(reviewed_db: Path, tmp_path: Path) -> Path:
    """A copy of the example run as `panel review` stores it (one pair, four reviewers and the chair)."""
    return Path(shutil.copy(reviewed_db, tmp_path / "panel.duckdb"))


def test_piped_sql_prints_csv_with_every_column_whole(db: Path) -> None:
    result = CliRunner().invoke(app, ["sql", "SELECT * FROM pair_summary", "--db", str(db)])  # not a terminal
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 1 and len(rows[0]) == 18
    assert (rows[0]["left_name"], rows[0]["left_ship_pct"], rows[0]["left_split"]) == ("SmolVLM2-2B", "75.0", "3-1")


def test_a_table_too_wide_for_the_terminal_prints_one_record_at_a_time(db: Path) -> None:
    output = terminal("sql", "SELECT * FROM pair_summary", "--db", str(db), columns=80)
    lines = output.splitlines()
    assert lines[0] == "-[ record 1 of 1 ]"
    fields = dict(re.match(r"(\w+): +(.*)$", line).groups() for line in lines[1:-1])
    assert len(fields) == 18
    assert (fields["left_name"], fields["left_ship_pct"], fields["left_split"]) == ("SmolVLM2-2B", "75", "3-1")
    assert fields["right_name"] == "Perplexity Sonar Pro 2 API" and lines[-1] == "1 row"
    assert "┃" not in output and "│" not in output  # no squeezed table


def test_a_table_that_fits_the_terminal_stays_a_table(db: Path) -> None:
    output = terminal(
        "sql", "SELECT left_name, left_split, right_name, right_split FROM pair_summary", "--db", str(db), columns=80
    )
    assert "│" in output and "SmolVLM2-2B" in output and "Perplexity Sonar Pro 2 API" in output
    assert max(len(line) for line in output.splitlines()) <= 80
    assert "record 1" not in output


def test_a_long_text_column_folds_in_a_table_while_the_others_keep_their_width(db: Path) -> None:
    query = "SELECT persona_id, verdict, review FROM verdicts ORDER BY persona_id"
    reviews = [row[0] for row in run_query(db, "SELECT review FROM verdicts ORDER BY persona_id").rows]
    output = terminal("sql", query, "--db", str(db), columns=80)
    assert "│" in output and "record 1" not in output
    assert max(len(line) for line in output.splitlines()) <= 80
    assert all(f"│ {persona:<10}" in output for persona in ("builder", "business", "futurist", "skeptic"))
    assert len(reviews[0]) > 80 and reviews[0].split()[0] in output


def test_format_vertical_and_table_choose_the_layout_anywhere(db: Path) -> None:
    vertical = CliRunner().invoke(
        app, ["sql", "SELECT left_name FROM pair_summary", "--db", str(db), "--format", "vertical"]
    )
    assert vertical.exit_code == 0 and vertical.stdout.splitlines()[:2] == [
        "-[ record 1 of 1 ]",
        "left_name: SmolVLM2-2B",
    ]
    table = CliRunner().invoke(app, ["sql", "SELECT left_name FROM pair_summary", "--db", str(db), "--format", "table"])
    assert table.exit_code == 0 and "SmolVLM2-2B" in table.stdout and "1 row" in table.stdout
