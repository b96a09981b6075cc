"""Finding the project: walk up to panel.toml like git; $PANEL_PROJECT overrides; outside one, one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from panel.errors import ProjectNotFound
from panel.project import find_project


@pytest.fixture(autouse=True)
def _no_project_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PANEL_PROJECT", raising=False)


def test_project_is_found_from_a_subfolder(tmp_path: Path) -> None:
    (tmp_path / "panel.toml").write_text("", encoding="utf-8")
    deep = tmp_path / "runs" / "cards"
    deep.mkdir(parents=True)
    project = find_project(deep)
    assert project.root == tmp_path.resolve()
    assert project.config_file == tmp_path.resolve() / "panel.toml"


def test_nearest_panel_toml_wins(tmp_path: Path) -> None:
    (tmp_path / "panel.toml").write_text("", encoding="utf-8")
    inner = tmp_path / "inner"
    inner.mkdir()
    (inner / "panel.toml").write_text("", encoding="utf-8")
    assert find_project(inner / ".").root == inner.resolve()


def test_working_directory_is_the_default_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "panel.toml").write_text("", encoding="utf-8")
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    assert find_project().root == tmp_path.resolve()


def test_outside_a_project_is_one_line_naming_panel_init(tmp_path: Path) -> None:
    with pytest.raises(ProjectNotFound) as caught:
        find_project(tmp_path)
    message = str(caught.value)
    assert "\n" not in message
    assert message == ("not inside a panel project (no panel.toml here or in any parent folder); run `panel init`")


def test_panel_project_overrides_the_walk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "panel.toml").write_text("", encoding="utf-8")
    here = tmp_path / "here"
    here.mkdir()
    (here / "panel.toml").write_text("", encoding="utf-8")
    monkeypatch.setenv("PANEL_PROJECT", str(elsewhere))
    assert find_project(here).root == elsewhere.resolve()


def test_panel_project_without_panel_toml_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PANEL_PROJECT", str(tmp_path))
    with pytest.raises(ProjectNotFound, match=r"\$PANEL_PROJECT .* holds no panel.toml"):
        find_project(tmp_path)


def test_relative_paths_are_taken_from_the_root(tmp_path: Path) -> None:
    (tmp_path / "panel.toml").write_text("", encoding="utf-8")
    project = find_project(tmp_path)
    assert project.path("runs/panel.duckdb") == tmp_path.resolve() / "runs" / "panel.duckdb"
    assert project.path("/abs/x") == Path("/abs/x")
