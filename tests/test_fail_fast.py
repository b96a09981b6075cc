"""An endpoint that cannot answer the run (bad key, no access, unknown model, nothing listening) stops it at once."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from panel.cli import main
from panel.config import Settings
from panel.consistency import check
from panel.errors import EndpointError
from panel.model.endpoint import missing_key_warning
from panel.store import Store
from tests.fake_openai import FAULT_401, FAULT_403, FAULT_404_MODEL, FAULT_RESET, FakeOpenAI
from tests.helpers import EXAMPLE_RUN, chat_requests, review_against


def rows(store: Store, sql: str) -> list[tuple]:
    with duckdb.connect(str(store.path), read_only=True) as con:
        return con.execute(sql).fetchall()


def cli_review(base_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], *flags: str) -> tuple[int, str, str]:
    """`panel review` of the example run (8 verdicts, default concurrency 8) in this process: (exit code, out, err)."""
    with pytest.raises(SystemExit) as exited:
        main(
            [
                "review",
                str(EXAMPLE_RUN),
                "--base-url",
                base_url,
                "--db",
                str(tmp_path / "panel.duckdb"),
                "--out",
                str(tmp_path / "pages"),
                *flags,
            ]
        )
    captured = capsys.readouterr()
    return exited.value.code, captured.out, captured.err


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error:")]


def pages_written(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "pages").rglob("*.html")) if (tmp_path / "pages").exists() else []


@pytest.mark.parametrize(
    ("fault", "names"),
    [
        (FAULT_401, ["OPENAI_API_KEY", "HTTP 401"]),
        (FAULT_403, ["OPENAI_API_KEY", "--model", "HTTP 403"]),
        (FAULT_404_MODEL, ["--model", "'fake-model'", "HTTP 404"]),
    ],
)
def test_refused_key_or_unknown_model_stops_the_run_after_one_request(
    fault: str, names: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with FakeOpenAI(faults=lambda index, body: fault) as server:
        code, out, err = cli_review(server.base_url, tmp_path, capsys, "--model", "fake-model", "--max-retries", "2")
        requests = len(chat_requests(server))
    assert requests == 1  # not one per worker, no SDK retry, no re-ask, no chair
    assert code == 2 and "Traceback" not in out + err
    [line] = error_lines(err)
    assert all(name in line for name in names), line
    assert "0 of 8 verdicts stored" in line and "rerun the same command" in line
    assert "page:" not in out and pages_written(tmp_path) == []
    store = Store(tmp_path / "panel.duckdb")
    assert rows(store, "SELECT status FROM runs") == [("stopped",)]
    assert rows(store, "SELECT valid, request_count FROM verdicts") == [(False, 1)]


def test_a_url_without_the_chat_api_names_the_base_url(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with FakeOpenAI() as server:  # the fake serves /v1/chat/completions only: the root answers 404
        code, _, err = cli_review(server.base_url.removesuffix("/v1"), tmp_path, capsys, "--model", "fake-model")
        requests = len(chat_requests(server))
    [line] = error_lines(err)
    assert code == 2 and requests == 1
    assert "OPENAI_BASE_URL" in line and "--base-url" in line and "HTTP 404" in line


def test_a_key_refused_midway_stops_the_run_and_keeps_what_was_answered(settings: Settings, tmp_path: Path) -> None:
    with FakeOpenAI(faults=lambda index, body: FAULT_401 if index >= 3 else None) as server:
        store, outcome = review_against(server, settings, concurrency=1)
        requests = len(chat_requests(server))
    assert requests == 4 and outcome.status == "stopped"
    assert outcome.endpoint_fault is not None and "OPENAI_API_KEY" in outcome.endpoint_fault
    assert outcome.stop_reason == outcome.endpoint_fault
    assert rows(store, "SELECT count(*) FILTER (WHERE valid), count(*) FROM verdicts") == [(3, 4)]


def test_a_key_refused_to_the_chair_stops_with_one_line_and_keeps_the_page(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def refuse_the_chair(index: int, body: dict) -> str | None:
        return FAULT_401 if "BEGIN PANEL VERDICTS" in json.dumps(body) else None

    with FakeOpenAI(faults=refuse_the_chair) as server:
        code, out, err = cli_review(server.base_url, tmp_path, capsys)
        requests = len(chat_requests(server))
    assert code == 2 and requests == 8 + 1
    [line] = error_lines(err)
    assert "OPENAI_API_KEY" in line and "pair summaries" in line
    assert len(pages_written(tmp_path)) == 1  # the eight verdicts are stored and drafted


def test_check_stops_at_a_refused_key_before_any_probe(settings: Settings) -> None:
    with FakeOpenAI(faults=lambda index, body: FAULT_401) as server:
        checked = settings.with_overrides(base_url=server.base_url, model="fake-model")
        with pytest.raises(EndpointError, match="OPENAI_API_KEY"):
            check(EXAMPLE_RUN, checked, Store(checked.db_path))
        assert len(chat_requests(server)) == 1


def test_refused_connection_on_the_first_verdict_stops_after_its_tries(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with FakeOpenAI() as gone:
        pass  # stopped: its port now refuses connections
    code, out, err = cli_review(gone.base_url, tmp_path, capsys, "--model", "fake-model", "--max-retries", "2")
    assert code == 2 and "Traceback" not in out + err
    [line] = error_lines(err)
    assert "cannot connect" in line and "OPENAI_BASE_URL" in line and "--base-url" in line
    assert "page:" not in out and pages_written(tmp_path) == []
    assert "no page written" in err
    store = Store(tmp_path / "panel.duckdb")
    # The first verdict's tries only (1 + max_retries), counted by the client; then nothing more starts.
    assert rows(store, "SELECT count(*), sum(request_count) FROM verdicts") == [(1, 3)]
    assert rows(store, "SELECT DISTINCT error_class FROM attempts") == [("APIConnectionError",)]
    assert rows(store, "SELECT status FROM runs") == [("stopped",)]


def test_dropped_connections_on_the_first_verdict_stop_after_its_tries(settings: Settings) -> None:
    with FakeOpenAI(faults=lambda index, body: FAULT_RESET) as dropping:
        store, outcome = review_against(dropping, settings, max_retries=2)
        requests = len(chat_requests(dropping))
    assert requests == 3 == outcome.requests
    assert outcome.status == "stopped" and outcome.endpoint_fault is not None
    assert "cannot connect" in outcome.endpoint_fault


def test_a_dropped_connection_after_the_run_has_worked_fails_only_its_verdict(settings: Settings) -> None:
    with FakeOpenAI(faults=[None, FAULT_RESET, FAULT_RESET]) as server:
        _, outcome = review_against(server, settings, concurrency=1, max_retries=1)
        requests = len(chat_requests(server))
    assert (outcome.asked, outcome.failed, outcome.status, outcome.endpoint_fault) == (8, 1, "incomplete", None)
    assert requests == 9


def test_no_key_for_a_remote_endpoint_warns_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    remote = Settings(base_url="https://api.example.com/v1")
    warning = missing_key_warning(remote)
    assert warning is not None and "\n" not in warning and "OPENAI_API_KEY" in warning
    monkeypatch.setenv("OPENAI_API_KEY", "")
    assert missing_key_warning(remote) is not None  # set but empty is no key either
    for local in (
        "http://127.0.0.1:8080/v1",
        "http://localhost:11434/v1",
        "http://[::1]:8000/v1",
        "http://0.0.0.0:8000/v1",
    ):
        assert missing_key_warning(Settings(base_url=local)) is None, local
    assert missing_key_warning(Settings()) is None  # the embedded model needs no key
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert missing_key_warning(remote) is None


def test_a_loopback_endpoint_without_a_key_gets_no_warning(
    fake: FakeOpenAI, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli_review(fake.base_url, tmp_path, capsys)
    assert code in (0, None) and "warning" not in err
    assert len(pages_written(tmp_path)) == 1
