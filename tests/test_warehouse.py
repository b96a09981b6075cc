"""The analysts' warehouse: views that answer the common questions, `panel sql` and `panel export` over a
read-only connection, refusals that change nothing, and reading while a review writes in another process."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
import yaml
from typer.testing import CliRunner

from panel.agreement import fleiss_kappa
from panel.cli import app
from panel.errors import StoreError
from panel.store import Store
from panel.store.migrations import MIGRATIONS
from panel.warehouse import export, run_query
from tests.fake_openai import FakeOpenAI
from tests.helpers import EXAMPLE_RUN, PANEL, PROJECT_ROOT, run_panel
from tests.stored_history import PERSONAS, History, verdict_table

SCHEMA_DOC = PROJECT_ROOT / "docs" / "schema.md"


def panel(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """`panel *args` in a child process at the repository root, with no OPENAI_*/PANEL_* settings from this test."""
    return run_panel(*args, clean_env=True, cwd=PROJECT_ROOT, timeout=timeout)


def invoke(*args: str) -> str:
    """Run a panel command in this process (fast) and return what it printed; it must succeed."""
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def stored_history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two runs a month apart: January splits the panel, February (a new skeptic prompt) ships everything."""
    h = History(tmp_path_factory.mktemp("history") / "panel.duckdb")
    h.run(
        "run-jan",
        "2024-01-10 09:00:00+00",
        [("Alpha", "Beta"), ("Gamma", "Delta")],
        verdict_table(
            Alpha="skip skip ship ship",
            Beta="skip skip skip skip",
            Gamma="ship ship - skip",
            Delta="ship ship ship ship",
        ),
        attempts={("Gamma", "futurist"): 4, ("Delta", "skeptic"): 2},
    )
    h.refresh("run-jan", "Alpha", "builder", "ship", "2024-01-11 09:00:00+00")  # the current verdict: ship
    h.chair("run-jan", 0, "Alpha", "Beta", "2024-01-10 10:00:00+00")  # not a reviewer: in no panel figure
    # 23:30 in New York on 31 January is 1 February in UTC: months are UTC months.
    h.run(
        "run-feb",
        "2024-01-31 23:30:00-05:00",
        [("Alpha", "Beta")],
        verdict_table(Alpha="ship ship ship ship", Beta="ship ship ship ship"),
        persona_versions={"skeptic": "v2"},
    )
    h.label("Alpha", "skeptic", "ship", "2024-01-01 00:00:00+00")
    h.label("Alpha", "skeptic", "skip", "2024-01-05 00:00:00+00")  # the latest label is the one in force
    h.label("Alpha", None, "ship", "2024-01-05 00:00:00+00")  # a tool-level label: not a persona's gold
    h.override("run-jan", "Beta", "business", "ship")
    return h.path


@pytest.fixture
def history(stored_history: Path, tmp_path: Path) -> Path:
    """A fresh copy of the stored history for one test."""
    return Path(shutil.copy(stored_history, tmp_path / "panel.duckdb"))


def rows_as_dicts(path: Path, sql: str) -> list[dict]:
    result = run_query(path, sql)
    return [dict(zip(result.columns, row)) for row in result.rows]


# --- views ------------------------------------------------------------------------------------------------
def test_pair_summary_gives_both_tools_ship_percent_and_split_with_overrides_and_refreshes(history: Path) -> None:
    rows = rows_as_dicts(history, "SELECT * FROM pair_summary")
    got = [
        (
            r["run_id"],
            r["left_name"],
            r["left_ship_pct"],
            r["left_split"],
            r["left_unanimous"],
            r["left_missing"],
            r["right_name"],
            r["right_ship_pct"],
            r["right_split"],
            r["right_unanimous"],
            r["right_missing"],
            r["overridden"],
        )
        for r in rows
    ]
    assert got == [
        # Alpha: builder's refresh turned skip into ship (3-1); Beta: the editor's override of business (1-3).
        ("run-jan", "Alpha", 75.0, "3-1", False, 0, "Beta", 25.0, "1-3", False, 0, 1),
        ("run-jan", "Gamma", pytest.approx(200 / 3), "2-1", False, 1, "Delta", 100.0, "4-0", True, 0, 0),
        ("run-feb", "Alpha", 100.0, "4-0", True, 0, "Beta", 100.0, "4-0", True, 0, 0),
    ]


def test_persona_by_version_shows_how_a_prompt_version_moved_ship_rate_reasks_and_label_agreement(
    history: Path,
) -> None:
    rows = {
        (r["persona_id"], r["persona_version"]): r for r in rows_as_dicts(history, "SELECT * FROM persona_by_version")
    }
    skeptic_v1, skeptic_v2 = rows[("skeptic", 1)], rows[("skeptic", 2)]
    assert (skeptic_v1["persona_hash"], skeptic_v2["persona_hash"]) == (
        History.persona("skeptic", "v1").content_hash,
        History.persona("skeptic", "v2").content_hash,
    )
    assert (skeptic_v1["answers"], skeptic_v1["ship_rate"], skeptic_v1["reask_rate"]) == (4, 0.5, 0.25)
    assert (skeptic_v2["answers"], skeptic_v2["ship_rate"], skeptic_v2["reask_rate"]) == (2, 1.0, 0.0)
    # Gold for (Alpha, skeptic) is the latest label, skip: v1 agreed, v2 did not.
    assert (skeptic_v1["labelled"], skeptic_v1["label_agreement"]) == (1, 1.0)
    assert (skeptic_v2["labelled"], skeptic_v2["label_agreement"]) == (1, 0.0)
    futurist = rows[("futurist", 1)]
    assert (futurist["answers"], futurist["verdicts"], futurist["failure_rate"]) == (6, 5, pytest.approx(1 / 6))
    assert futurist["mean_confidence"] == pytest.approx((4 * 0.9 + 0.6) / 5)
    assert {persona for persona, _ in rows} == set(PERSONAS)  # the chair is not a reviewer
    builder = rows[("builder", 1)]  # the refresh is a second answer in the history
    assert (builder["answers"], builder["ship"]) == (7, 5)
    assert builder["labelled"] == 0 and builder["label_agreement"] is None


def test_persona_by_month_uses_utc_months_and_editor_overrides_count_as_gold(history: Path) -> None:
    rows = {(r["persona_id"], str(r["month"])): r for r in rows_as_dicts(history, "SELECT * FROM persona_by_month")}
    assert sorted(month for persona, month in rows if persona == "business") == ["2024-01-01", "2024-02-01"]
    january, february = rows[("business", "2024-01-01")], rows[("business", "2024-02-01")]
    assert (january["answers"], january["ship_rate"]) == (4, 0.5)
    assert (february["answers"], february["ship_rate"]) == (2, 1.0)
    # The editor's override made (Beta, business) gold 'ship': January's model said skip, February's ship.
    gold = rows_as_dicts(
        history,
        "SELECT DISTINCT label, label_source FROM persona_answers WHERE persona_id = 'business' AND tool_name = 'Beta'",
    )
    assert gold == [{"label": "ship", "label_source": "override by ed"}]
    assert (january["labelled"], january["label_agreement"]) == (1, 0.0)
    assert (february["labelled"], february["label_agreement"]) == (1, 1.0)


def test_a_reverted_override_is_no_longer_gold(history: Path) -> None:
    History(history).override("run-jan", "Beta", "business", None, revert=True)  # what `panel override --revert` stores
    business = rows_as_dicts(
        history, "SELECT labelled, label_agreement FROM persona_by_month WHERE persona_id = 'business' ORDER BY month"
    )
    assert business == [{"labelled": 0, "label_agreement": None}] * 2
    pair = rows_as_dicts(history, "SELECT right_split, overridden FROM pair_summary WHERE run_id = 'run-jan'")[0]
    assert pair == {"right_split": "0-4", "overridden": 0}  # the page shows the model's verdict again


def test_run_agreement_is_fleiss_kappa_of_the_personas_own_verdicts(history: Path) -> None:
    rows = {r["run_id"]: r for r in rows_as_dicts(history, "SELECT * FROM run_agreement")}
    # Model verdicts, not the override: Alpha 3-1 (after refresh), Beta 0-4, Gamma 2-1 (one missing), Delta 4-0.
    expected = fleiss_kappa([{"ship": 3, "skip": 1}, {"skip": 4}, {"ship": 2, "skip": 1}, {"ship": 4}])
    assert rows["run-jan"]["fleiss_kappa"] == pytest.approx(expected)
    assert rows["run-jan"]["fleiss_kappa"] == pytest.approx((17 / 24 - 0.52) / 0.48)
    assert (rows["run-jan"]["subjects"], rows["run-jan"]["ratings"]) == (4, 15)
    # Everyone shipped everything: agreement is perfect but kappa is undefined, so NULL rather than 1.
    assert rows["run-feb"]["observed_agreement"] == 1.0 and rows["run-feb"]["fleiss_kappa"] is None


def test_views_agree_with_the_rendered_page_for_a_reviewed_run(fake: FakeOpenAI, tmp_path: Path) -> None:
    db = tmp_path / "reviewed.duckdb"
    reviewed = panel(
        "review", str(EXAMPLE_RUN), "--base-url", fake.base_url, "--db", str(db), "--out", str(tmp_path / "pages")
    )
    assert reviewed.returncode == 0, reviewed.stderr
    (pair,) = rows_as_dicts(db, "SELECT * FROM pair_summary")
    assert (pair["left_ship_pct"], pair["left_split"], pair["right_ship_pct"], pair["right_split"]) == (
        75.0,
        "3-1",
        75.0,
        "3-1",
    )  # the page's "75% Panel ship" on both tools
    (agreement,) = rows_as_dicts(db, "SELECT fleiss_kappa FROM run_agreement")
    assert agreement["fleiss_kappa"] == pytest.approx(-1 / 3)


# --- panel sql ----------------------------------------------------------------------------------------------
def test_sql_prints_a_table_csv_or_json(history: Path) -> None:
    query = "SELECT run_id, left_name, left_ship_pct, started_at FROM pair_summary ORDER BY run_id, pair_index"
    table = invoke("sql", query, "--db", str(history), "--format", "table")
    assert "Gamma" in table and "66.6667" in table and "3 rows" in table
    as_csv = list(csv.DictReader(io.StringIO(invoke("sql", query, "--db", str(history), "--format", "csv"))))
    assert [row["left_name"] for row in as_csv] == ["Alpha", "Alpha", "Gamma"]
    assert as_csv[0]["started_at"] == "2024-02-01T04:30:00"  # times are printed in UTC
    as_json = json.loads(invoke("sql", query, "--db", str(history), "--format", "json"))
    assert as_json[2] == {
        "run_id": "run-jan",
        "left_name": "Gamma",
        "left_ship_pct": pytest.approx(200 / 3),
        "started_at": "2024-01-10T09:00:00",
    }


WRITES = [
    "INSERT INTO labels (tool_name, verdict, source, created_at) VALUES ('x', 'ship', 'me', now())",
    "DELETE FROM verdicts",
    "UPDATE runs SET title = 'x'",
    "DROP VIEW pair_summary",
    "CREATE TABLE notes (x INTEGER)",
    "COPY verdicts TO '{out}/stolen.csv'",
    "EXPORT DATABASE '{out}/stolen'",
    "ATTACH '{out}/other.duckdb' AS other",
    "INSTALL httpfs",
    "LOAD httpfs",
    "SET threads = 1",
    "PRAGMA enable_profiling",
    "CALL checkpoint()",
    "CHECKPOINT",
    "SELECT 1; DELETE FROM verdicts",
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_text('/etc/hostname')",
    "SELECT nextval('verdict_seq')",
    "WITH gone AS (DELETE FROM verdicts RETURNING *) SELECT * FROM gone",
]


@pytest.mark.parametrize("statement", WRITES)
def test_sql_that_writes_or_touches_files_is_refused_and_changes_nothing(
    history: Path, tmp_path: Path, statement: str
) -> None:
    before = file_digest(history)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(StoreError) as refused:
        run_query(history, statement.format(out=out))
    assert "\n" not in str(refused.value)
    assert file_digest(history) == before
    assert list(out.iterdir()) == []


def test_refused_write_is_a_one_line_cli_error(history: Path) -> None:
    before = file_digest(history)
    result = panel("sql", "DELETE FROM verdicts", "--db", str(history))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip() == (
        "error: refused: panel sql only reads (SELECT or EXPLAIN); this is a DELETE statement"
    )
    assert file_digest(history) == before


def test_sql_error_names_the_problem_on_one_line(history: Path) -> None:
    with pytest.raises(
        StoreError, match=r"^SQL error: Catalog Error: Table with name pair_sumary does not exist"
    ) as failed:
        run_query(history, "SELECT * FROM pair_sumary")
    assert "\n" not in str(failed.value)


def test_a_runaway_query_is_cancelled_so_a_writer_is_not_held_up(history: Path) -> None:
    started = time.monotonic()
    with pytest.raises(StoreError, match="query cancelled after 0.3 s"):
        run_query(history, "SELECT count(*) FROM range(1000000000000)", timeout_s=0.3)
    assert time.monotonic() - started < 10


def test_corrupt_database_is_a_one_line_error_and_is_left_as_it_was(tmp_path: Path) -> None:
    db = tmp_path / "panel.duckdb"
    db.write_bytes(b"this is not a database\n" * 500)
    before = file_digest(db)
    result = panel("sql", "SELECT count(*) FROM verdicts", "--db", str(db))
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "not a valid DuckDB database file" in result.stderr and "Traceback" not in result.stderr
    assert file_digest(db) == before


def test_a_duckdb_file_that_is_not_a_panel_database_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    db = tmp_path / "other.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute("CREATE TABLE sales AS SELECT 1 AS amount")
    before = file_digest(db)
    with pytest.raises(StoreError, match="not a panel database"):
        run_query(db, "SELECT * FROM sales")
    assert file_digest(db) == before


def test_missing_database_is_not_created_by_a_query(tmp_path: Path) -> None:
    db = tmp_path / "nowhere.duckdb"
    with pytest.raises(StoreError, match="no panel database here; run `panel review` first or pass --db"):
        run_query(db, "SELECT 1")
    assert not db.exists()


def test_database_locked_by_another_process_is_a_one_line_error(history: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; con = duckdb.connect(sys.argv[1]); print('holding', flush=True); time.sleep(60)",
            str(history),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "holding"
        result = panel("sql", "SELECT count(*) FROM verdicts", "--db", str(history), "--wait", "0.3")
    finally:
        holder.kill()
        holder.wait()
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "database is locked by another process; try again" in result.stderr


def test_database_from_a_newer_panel_is_refused_and_left_as_it_was(history: Path) -> None:
    with duckdb.connect(str(history)) as con:
        con.execute("INSERT INTO schema_migrations VALUES (999, 'from the future', now())")
    before = file_digest(history)
    with pytest.raises(StoreError, match="schema version 999 is newer than this panel"):
        run_query(history, "SELECT count(*) FROM verdicts")
    assert file_digest(history) == before


def test_database_from_an_older_panel_is_upgraded_in_place_and_keeps_its_rows(tmp_path: Path) -> None:
    db = tmp_path / "old.duckdb"
    con = duckdb.connect(str(db))
    con.execute(
        "CREATE TABLE schema_migrations (number INTEGER PRIMARY KEY, name VARCHAR NOT NULL, "
        "applied_at TIMESTAMPTZ NOT NULL)"
    )
    for number, name, migration in MIGRATIONS[:2]:  # the walking skeleton's schema: no views yet
        migration(con)
        con.execute("INSERT INTO schema_migrations VALUES (?, ?, now())", [number, name])
    con.execute(
        "INSERT INTO runs VALUES ('old-run', 'Old', 'r.yaml', 'm', NULL, 'prompt', '{}', 'finished', now(), now())"
    )
    con.close()
    assert run_query(db, "SELECT run_id, subjects FROM run_agreement").rows == [("old-run", 0)]
    applied = run_query(db, "SELECT number FROM schema_migrations ORDER BY number").rows
    assert [n for (n,) in applied] == [number for number, _, _ in MIGRATIONS]


# --- panel export -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("file_format", ["parquet", "csv"])
def test_export_writes_every_table_and_view_with_all_rows(history: Path, tmp_path: Path, file_format: str) -> None:
    out = tmp_path / "export"
    invoke("export", "--format", file_format, "--out", str(out), "--db", str(history))
    names = {
        name
        for (name,) in run_query(
            history,
            """
        SELECT table_name FROM duckdb_tables() WHERE NOT temporary
        UNION SELECT view_name FROM duckdb_views() WHERE NOT internal AND NOT temporary""",
        ).rows
    }
    assert {"verdicts", "labels", "pair_summary", "persona_by_month", "run_agreement"} <= names
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{name}.{file_format}" for name in names)
    reader = "read_parquet" if file_format == "parquet" else "read_csv"
    with duckdb.connect() as con:
        for name in ("verdicts", "pair_summary", "persona_by_version"):
            stored = run_query(history, f"SELECT count(*) FROM {name}").rows[0][0]
            exported = con.execute(f"SELECT count(*) FROM {reader}(?)", [str(out / f"{name}.{file_format}")]).fetchall()
            assert exported[0][0] == stored > 0


def test_export_library_reports_rows_per_object(history: Path, tmp_path: Path) -> None:
    written = {item.name: item for item in export(history, tmp_path / "out", "parquet")}
    assert (written["verdicts"].kind, written["verdicts"].rows) == ("table", 26)
    assert (written["pair_summary"].kind, written["pair_summary"].rows) == ("view", 3)


# --- reading while a review writes, in two processes ------------------------------------------------------
def write_generated_run(folder: Path, pairs: int) -> Path:
    def card(number: int) -> dict:
        return {
            "name": f"Generated Tool {number}",
            "category": "Developer Tools",
            "tagline": f"Generated tool {number}",
            "description": f"Generated tool {number} for a long run.",
            "pricing": {"entry": "Free", "details": "Free."},
        }

    path = folder / "long-run.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "title": "A run that lasts several seconds",
                "pairs": [[card(2 * i), card(2 * i + 1)] for i in range(pairs)],
            }
        )
    )
    return path


def test_analysts_read_while_a_review_writes_in_another_process(tmp_path: Path) -> None:
    pairs = 3  # 24 verdicts, two at a time, 0.3 s each: a review of about 4 s
    db = tmp_path / "live.duckdb"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "PANEL_"))}
    fake = subprocess.Popen(
        [sys.executable, "-m", "tests.fake_openai", "--port", "0", "--latency", "0.3"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=PROJECT_ROOT,
        env=env,
    )
    writer = None
    try:
        url = re.match(r"READY (\S+)", fake.stdout.readline()).group(1)
        writer = subprocess.Popen(
            [
                *PANEL,
                "review",
                str(write_generated_run(tmp_path, pairs)),
                "--base-url",
                url,
                "--concurrency",
                "2",
                "--db",
                str(db),
                "--out",
                str(tmp_path / "pages"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=PROJECT_ROOT,
        )
        assert writer.stdout.readline().startswith("run ")  # the database exists from here on
        counts, exports = [], 0
        while writer.poll() is None:
            read = panel("sql", "SELECT count(*) AS n FROM verdicts", "--db", str(db), "--format", "csv")
            assert read.returncode == 0, read.stderr
            counts.append(int(read.stdout.splitlines()[1]))
            if exports == 0 and counts[-1] > 0:
                exported = panel("export", "--out", str(tmp_path / "export"), "--db", str(db))
                assert exported.returncode == 0, exported.stderr
                exports += 1
        _, errors = writer.communicate(timeout=60)
        assert writer.returncode == 0, errors
    finally:
        for process in (writer, fake):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
    final = run_query(db, "SELECT count(*) FROM verdicts").rows[0][0]
    reviewed = run_query(db, "SELECT count(*) FROM run_verdicts WHERE valid").rows[0][0]
    assert reviewed == pairs * 2 * len(PERSONAS)
    assert counts == sorted(counts) and any(0 < n < final for n in counts), counts
    assert exports == 1


# --- the schema document ------------------------------------------------------------------------------------
def documented_columns(doc: str) -> dict[str, set[str]]:
    """{table or view: columns in its table} from the '### `name`' sections of docs/schema.md."""
    documented: dict[str, set[str]] = {}
    for section in re.split(r"^### ", doc, flags=re.MULTILINE)[1:]:
        heading, _, body = section.partition("\n")
        # A row's first cell names one column or several that share a meaning: | `a`, `b` | ... |
        first_cells = re.findall(r"^\| (`\w+`(?:, `\w+`)*) \|", body, re.MULTILINE)
        columns = {name for cell in first_cells for name in re.findall(r"`(\w+)`", cell)}
        for name in re.findall(r"`(\w+)`", heading.split(" — ")[0]):
            documented.setdefault(name, set()).update(columns)
    return documented


def test_schema_doc_describes_every_table_column_and_view(tmp_path: Path) -> None:
    Store(tmp_path / "fresh.duckdb")
    documented = documented_columns(SCHEMA_DOC.read_text(encoding="utf-8"))
    columns = run_query(
        tmp_path / "fresh.duckdb",
        """
        SELECT table_name, column_name FROM duckdb_columns()
        WHERE NOT internal AND schema_name = 'main' AND database_name = current_database()""",
    ).rows
    missing = [f"{table}.{column}" for table, column in columns if column not in documented.get(table, set())]
    assert missing == [], f"docs/schema.md does not describe: {', '.join(missing)}"
