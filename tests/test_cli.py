"""The `panel` command as a user runs it: help everywhere, one-line errors, review then render."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer.main

from panel.cli import app
from tests.fake_openai import FakeOpenAI
from tests.helpers import EXAMPLE_RUN, chat_requests, run_panel


def command_names() -> list[str]:
    group = typer.main.get_command(app)
    return sorted(group.commands)


@pytest.mark.parametrize("name", command_names())
def test_every_command_has_help_with_an_example(name: str) -> None:
    result = run_panel(name, "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout and "Example:" in result.stdout


def test_broken_card_is_one_line_error_and_no_model_call(tmp_path: Path, fake: FakeOpenAI) -> None:
    (tmp_path / "run.yaml").write_text("pairs:\n  - [{name: A}, {name: B}]\n", encoding="utf-8")
    result = run_panel("review", str(tmp_path / "run.yaml"), "--base-url", fake.base_url)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
    assert "run.yaml: tool 'A': field 'category' is missing" in result.stderr
    assert chat_requests(fake) == []


def test_a_down_endpoint_stops_at_the_first_verdict_and_says_what_to_fix(tmp_path: Path) -> None:
    with FakeOpenAI() as gone:
        pass  # stopped: its port now refuses connections
    result = run_panel(
        "review",
        str(EXAMPLE_RUN),
        "--base-url",
        gone.base_url,
        "--model",
        "fake-model",
        "--max-retries",
        "0",
        "--db",
        str(tmp_path / "p.duckdb"),
        "--out",
        str(tmp_path / "pages"),
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    failures = [line for line in result.stdout.splitlines() if "no valid answer" in line]
    assert len(failures) == 1 and "(APIConnectionError: Connection error.)" in failures[0], failures
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "OPENAI_BASE_URL" in errors[0], result.stderr


def test_review_then_render_without_a_model(fake: FakeOpenAI, tmp_path: Path) -> None:
    out = tmp_path / "pages"
    reviewed = run_panel("review", str(EXAMPLE_RUN), "--base-url", fake.base_url, "--out", str(out))
    assert reviewed.returncode == 0, reviewed.stderr
    assert "finished: 8 verdicts" in reviewed.stdout and "75%" in reviewed.stdout
    calls = len(chat_requests(fake))
    fake.stop()  # rendering must not need the endpoint
    for page in out.rglob("*.html"):
        page.unlink()
    rendered = run_panel("render", "--out", str(out))
    assert rendered.returncode == 0, rendered.stderr
    assert calls == 9  # eight verdicts and the chair's summary
    pages = list(out.rglob("*.html"))
    assert len(pages) == 1 and "75%" in pages[0].read_text()
    assert pages[0].with_suffix(".md").exists()


def test_static_render_shows_readers_votes_once_there_are_some(fake: FakeOpenAI, tmp_path: Path) -> None:
    from datetime import datetime, timezone

    from panel.store import Store, VoteEvent

    out = tmp_path / "pages"
    assert run_panel("review", str(EXAMPLE_RUN), "--base-url", fake.base_url, "--out", str(out)).returncode == 0
    store = Store(tmp_path / "panel.duckdb")
    run_id = store.resolve_run_id(None)
    tool_id = store.load_run(run_id).tool_ids[0][0]
    now = datetime.now(timezone.utc)
    store.add_votes(
        [VoteEvent(run_id, tool_id, "reader-a", "skip", now), VoteEvent(run_id, tool_id, "reader-b", "ship", now)]
    )
    assert run_panel("render", "--out", str(out)).returncode == 0
    page = next(out.rglob("*.html")).read_text()
    assert "50%" in page and "2 votes" in page
    assert "<form" not in page  # static pages stay form-free; voting happens on served pages


def test_reading_commands_never_create_an_empty_database(tmp_path: Path) -> None:
    missing = tmp_path / "typo.duckdb"
    for args in (["render"], ["overrides"], ["personas"], ["labels", "list"]):
        result = run_panel(*args, "--db", str(missing))
        assert result.returncode == 2 and "no database here yet" in result.stderr, (args, result.stderr)
    assert not missing.exists()
