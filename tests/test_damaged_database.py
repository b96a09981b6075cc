"""A database panel cannot use is refused in one line before anything is asked or written; a dropped view comes back."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from panel.cli import main
from panel.store import Store
from panel.warehouse import run_query
from tests.fake_openai import FakeOpenAI
from tests.helpers import EXAMPLE_RUN, chat_requests, reference_labels_path


def _random_bytes(db: Path) -> None:
    db.write_bytes(os.urandom(300_000))


def _truncated(db: Path) -> None:
    os.truncate(db, db.stat().st_size // 2)


def _overwritten_in_the_middle(db: Path) -> None:
    size = db.stat().st_size
    with open(db, "r+b") as file:  # the middle half: whatever blocks sit there, tables and indexes are hit
        file.seek(size // 4)
        file.write(bytes([0xA5]) * (size // 2))


def _table_dropped(db: Path) -> None:
    with duckdb.connect(str(db)) as con:
        con.execute("DROP TABLE attempts")


def _someone_elses(db: Path) -> None:
    db.unlink()
    with duckdb.connect(str(db)) as con:
        con.execute("CREATE TABLE sales AS SELECT 1 AS amount")


# A one-line refusal each, with what it says (a damaged file: panel's commands say so; sql and export may
# relay DuckDB's read error, still one line).
DAMAGE: dict[str, tuple[Callable[[Path], None], str]] = {
    "random bytes": (_random_bytes, "not a valid DuckDB database file"),
    "truncated to half": (_truncated, ""),
    "overwritten in the middle": (_overwritten_in_the_middle, ""),
    "table dropped": (_table_dropped, "table attempts missing"),
    "not a panel database": (_someone_elses, "not a panel database"),
}


def damaged_copy(reviewed_db: Path, folder: Path, damage: str) -> Path:
    """A copy of the reviewed database with `damage` done to it."""
    db = folder / "panel.duckdb"
    shutil.copyfile(reviewed_db, db)
    DAMAGE[damage][0](db)
    return db


def digest(db: Path) -> str:
    """The file's bytes, hashed, and whether DuckDB left a WAL beside it."""
    wal = db.with_name(db.name + ".wal")
    return hashlib.sha256(db.read_bytes()).hexdigest() + (" +wal" if wal.exists() else "")


def panel(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run a panel command in this process; return its exit code, stdout and stderr."""
    try:
        main(list(args))
        code = 0
    except SystemExit as exited:
        code = int(exited.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_refusal(code: int, err: str, expected: str) -> None:
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert expected in err and "Traceback" not in err


@pytest.mark.parametrize("damage", DAMAGE)
def test_review_of_a_damaged_database_asks_nothing_writes_nothing_and_says_why_in_one_line(
    reviewed_db: Path, tmp_path: Path, fake: FakeOpenAI, capsys: pytest.CaptureFixture[str], damage: str
) -> None:
    db = damaged_copy(reviewed_db, tmp_path, damage)
    before = digest(db)
    # --refresh: every verdict would be asked again, so a late failure would cost requests
    # --model: without one, the note naming the model the fake lists would be a second line
    code, _, err = panel(
        capsys,
        "review",
        str(EXAMPLE_RUN),
        "--refresh",
        "--base-url",
        fake.base_url,
        "--model",
        "fake-model",
        "--db",
        str(db),
        "--out",
        str(tmp_path / "pages"),
    )
    assert_one_line_refusal(code, err, DAMAGE[damage][1] or "it is damaged")
    assert chat_requests(fake) == []
    assert digest(db) == before


READERS = {
    "render": ["render"],
    "overrides": ["overrides"],
    "personas": ["personas"],
    "sql": ["sql", "SELECT count(*) FROM pair_summary"],
    "export": ["export", "--format", "csv"],
}
WRITERS = {
    "override": ["override", "--tool", "SmolVLM2-2B", "--persona", "business", "--verdict", "ship"],
    "labels import": ["labels", "import", str(reference_labels_path())],
}


@pytest.mark.parametrize("command", [*READERS, *WRITERS])
@pytest.mark.parametrize("damage", DAMAGE)
def test_every_command_on_a_damaged_database_is_one_line_without_a_traceback(
    reviewed_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: str, command: str
) -> None:
    db = damaged_copy(reviewed_db, tmp_path, damage)
    args = {**READERS, **WRITERS}[command]
    out_option = ["--out", str(tmp_path / "out")] if command in ("render", "override", "export") else []
    code, _, err = panel(capsys, *args, "--db", str(db), *out_option)
    if damage == "overwritten in the middle" and command in READERS and code == 0:
        return  # a read that never touches the damaged blocks answers correctly: DuckDB checks a block when read
    assert_one_line_refusal(code, err, DAMAGE[damage][1])


@pytest.mark.parametrize("damage", ["truncated to half", "table dropped", "not a panel database"])
def test_serve_on_a_damaged_database_stops_at_once_with_one_line(
    reviewed_db: Path, tmp_path: Path, damage: str
) -> None:
    db = damaged_copy(reviewed_db, tmp_path, damage)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "PANEL_"))}
    result = subprocess.run(
        [sys.executable, "-c", "from panel.cli import main; main()", "serve", "--port", "0", "--db", str(db)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert_one_line_refusal(result.returncode, result.stderr, DAMAGE[damage][1])
    assert "serving" not in result.stdout


def test_a_dropped_view_is_recreated_on_open_and_nothing_stored_changes(
    reviewed_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "panel.duckdb"
    shutil.copyfile(reviewed_db, db)
    expected = run_query(db, "SELECT * FROM pair_summary").rows
    with duckdb.connect(str(db)) as con:
        con.execute("DROP VIEW pair_summary")
        con.execute("DROP VIEW run_verdicts")  # pair_summary reads it: recreated first, whatever the order
    code, out, err = panel(capsys, "sql", "SELECT * FROM pair_summary", "--db", str(db), "--format", "json")
    assert code == 0, err
    assert run_query(db, "SELECT * FROM pair_summary").rows == expected
    assert run_query(db, "SELECT count(*) FROM verdicts").rows == [(8 + 1,)]  # four personas x two tools, chair


def test_an_empty_duckdb_file_gets_the_schema(tmp_path: Path) -> None:
    db = tmp_path / "empty.duckdb"
    duckdb.connect(str(db)).close()
    Store(db).check_writable()
    assert run_query(db, "SELECT count(*) FROM runs").rows == [(0,)]


@pytest.mark.parametrize("damage", ["table dropped", "not a panel database"])
def test_a_damaged_database_held_by_a_reader_is_refused_before_any_request(
    reviewed_db: Path, tmp_path: Path, fake: FakeOpenAI, damage: str
) -> None:
    # While an analyst's query holds the file a review cannot take a write to rehearse: it must still refuse.
    db = damaged_copy(reviewed_db, tmp_path, damage)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; con = duckdb.connect(sys.argv[1], "
            "read_only=True); print('held', flush=True); time.sleep(60)",
            str(db),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        result = subprocess.run(
            [
                sys.executable,
                "-c",
                "from panel.cli import main; main()",
                "review",
                str(EXAMPLE_RUN),
                "--refresh",
                "--base-url",
                fake.base_url,
                "--model",
                "fake-model",
                "--db",
                str(db),
                "--out",
                str(tmp_path / "pages"),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env={k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "PANEL_"))},
        )
    finally:
        holder.kill()
        holder.wait()
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert f"{db}: " in result.stderr and DAMAGE[damage][1] in result.stderr
    assert chat_requests(fake) == []
