"""Gold labels: imported once from JSONL, added by hand, and editor overrides counted as labels (latest wins)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import pytest

from panel.cli import main
from panel.labels import LabelError, base_rate, import_labels, labels_by_key, read_labels_file
from panel.review import prepare_run, review
from panel.store import Store
from tests.fake_openai import FakeOpenAI
from tests.helpers import EXAMPLE_RUN, reference_labels_path, run_panel, writer_lock_held_elsewhere

PERSONAS = ["builder", "skeptic", "futurist", "business"]


def test_reference_labels_import_once_and_give_the_page_base_rate(tmp_path: Path) -> None:
    store = Store(tmp_path / "panel.duckdb")
    assert import_labels(store, reference_labels_path(), "reference", PERSONAS) == (8, 8)
    assert import_labels(store, reference_labels_path(), "reference", PERSONAS) == (8, 0)
    labels = store.gold_labels()
    assert len(labels) == 8 and {label.source for label in labels} == {"reference"}
    gold = labels_by_key(labels)
    assert gold[("SmolVLM2-2B", "business")] == "skip" and gold[("Perplexity Sonar Pro 2 API", "skeptic")] == "ship"
    assert (base_rate(labels), base_rate(labels, "business"), base_rate(labels, "skeptic")) == (0.75, 0.0, 1.0)


@pytest.mark.parametrize(
    "line, message",
    [
        ("not json", r"labels\.jsonl:2: not a JSON object"),
        (
            '{"tool": "A", "persona": "skeptic", "verdict": "maybe"}',
            r"labels\.jsonl:2: field 'verdict': Input should be 'ship' or 'skip'",
        ),
        ('{"persona": "skeptic", "verdict": "ship"}', r"labels\.jsonl:2: field 'tool': Field required"),
        ('{"tool": "A", "persona": "skeptik", "verdict": "ship"}', r"labels\.jsonl:2: unknown persona 'skeptik'"),
    ],
)
def test_a_bad_label_line_is_a_one_line_error_naming_the_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "labels.jsonl"
    path.write_text(json.dumps({"tool": "A", "verdict": "ship"}) + "\n" + line + "\n", encoding="utf-8")
    with pytest.raises(LabelError, match=message):
        read_labels_file(path, "editor", PERSONAS)


def reviewed_with_reference_labels(fake: FakeOpenAI, settings) -> tuple[Store, str, str]:
    """A reviewed example run with the reference labels imported: the store, run id and SmolVLM2's tool id."""
    settings = settings.with_overrides(base_url=fake.base_url, model="fake-model")
    store = Store(settings.db_path)
    outcome = review(prepare_run(EXAMPLE_RUN, settings), settings, store)
    import_labels(store, reference_labels_path(), "reference", PERSONAS)
    tool_id = next(
        job.tool.card_hash for job in prepare_run(EXAMPLE_RUN, settings).jobs if job.tool.name == "SmolVLM2-2B"
    )
    return store, outcome.run_id, tool_id


def test_editor_override_counts_as_the_latest_label_until_reverted(fake: FakeOpenAI, settings) -> None:
    store, run_id, tool_id = reviewed_with_reference_labels(fake, settings)
    later = datetime.now(timezone.utc) + timedelta(seconds=1)
    with duckdb.connect(str(store.path)) as con:  # what the editor's page writes when a verdict is changed
        con.execute(
            """INSERT INTO overrides (run_id, tool_id, persona_id, verdict, review, editor, note, created_at)
                       VALUES (?, ?, 'skeptic', 'skip', NULL, 'ana', NULL, ?)""",
            [run_id, tool_id, later],
        )
    gold = {(label.tool_name, label.persona_id): label for label in store.gold_labels()}
    assert (gold[("SmolVLM2-2B", "skeptic")].verdict, gold[("SmolVLM2-2B", "skeptic")].source) == (
        "skip",
        "override by ana",
    )
    assert len(gold) == 8
    with duckdb.connect(str(store.path)) as con:  # a revert: the latest override row keeps the model's verdict
        con.execute(
            """INSERT INTO overrides (run_id, tool_id, persona_id, verdict, review, editor, note, created_at)
                       VALUES (?, ?, 'skeptic', NULL, NULL, 'ana', NULL, ?)""",
            [run_id, tool_id, later + timedelta(seconds=1)],
        )
    gold = {(label.tool_name, label.persona_id): label for label in store.gold_labels()}
    assert (gold[("SmolVLM2-2B", "skeptic")].verdict, gold[("SmolVLM2-2B", "skeptic")].source) == ("ship", "reference")


def test_cli_import_add_and_list(tmp_path: Path) -> None:
    db = str(tmp_path / "panel.duckdb")
    first = run_panel("labels", "import", str(reference_labels_path()), "--db", db)
    second = run_panel("labels", "import", str(reference_labels_path()), "--db", db)
    assert (first.returncode, second.returncode) == (0, 0), first.stderr + second.stderr
    assert "8 labels read, 8 new" in first.stdout and "8 labels read, 0 new" in second.stdout
    added = run_panel("labels", "add", "SmolVLM2-2B", "skip", "--db", db)
    assert added.returncode == 0 and "label added" in added.stdout
    listed = run_panel("labels", "list", "--db", db)
    assert "9 gold labels" in listed.stdout and "(overall)" in listed.stdout
    bad = run_panel("labels", "add", "SmolVLM2-2B", "maybe", "--persona", "skeptic", "--db", db)
    assert bad.returncode == 2 and bad.stderr.strip() == "error: label: verdict must be ship or skip, not 'maybe'"


def test_a_chair_override_is_not_a_gold_label(fake: FakeOpenAI, settings) -> None:
    store, run_id, tool_id = reviewed_with_reference_labels(fake, settings)
    with duckdb.connect(str(store.path)) as con:  # the chair's pick of a tool, as `panel override` stores it
        con.execute(
            """INSERT INTO overrides (run_id, tool_id, persona_id, verdict, review, editor, note, created_at)
                       VALUES (?, ?, 'chair', 'right', NULL, 'ana', NULL, ?)""",
            [run_id, tool_id, datetime.now(timezone.utc)],
        )
    labels = store.gold_labels()
    assert len(labels) == 8 and all(label.persona_id != "chair" for label in labels)
    assert base_rate(labels) == 0.75


@pytest.mark.parametrize("command", [["import", str(reference_labels_path())], ["add", "SmolVLM2-2B", "skip"]])
def test_labels_while_another_process_writes_are_refused_in_one_line_and_store_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    db = tmp_path / "panel.duckdb"
    Store(db)
    with writer_lock_held_elsewhere(db):
        with pytest.raises(SystemExit) as exited:
            main(["labels", *command, "--db", str(db)])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and err.count("\n") == 1, err
    assert "another panel run is writing this database (pid" in err
    assert Store(db).gold_labels() == []
