"""`panel init`: a ready project from the package's defaults, never overwriting a file."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from panel.errors import ScaffoldError
from panel.scaffold import PROJECT_FILES, default_files, init_project
from tests.helpers import PROJECT_ROOT as REPOSITORY
from tests.helpers import run_panel


def tree(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


def test_init_writes_a_project_that_lints_clean(tmp_path: Path) -> None:
    result = run_panel("init", "demo", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    project = tmp_path / "demo"
    assert tree(project) == {
        "panel.toml",
        "README.md",
        ".gitignore",
        "personas/README.md",
        "personas/builder.md",
        "personas/business.md",
        "personas/futurist.md",
        "personas/skeptic.md",
        "prompts/chair_system.j2",
        "prompts/chair_user.j2",
        "prompts/system.j2",
        "prompts/user.j2",
        "runs/example.yaml",
        "runs/example-labels.jsonl",
        "runs/cards/perplexity-sonar-pro-2.yaml",
        "runs/cards/smolvlm2-2b.yaml",
    }
    assert "wrote demo/panel.toml" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "next: cd demo && panel review runs/example.yaml"
    lint = run_panel("lint", "runs/example.yaml", "--personas-dir", "personas", "--prompts-dir", "prompts", cwd=project)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert " 0 errors" in lint.stdout


def test_init_copies_the_repository_defaults_byte_for_byte(tmp_path: Path) -> None:
    init_project(tmp_path)
    for name in ("personas/skeptic.md", "prompts/chair_user.j2", "runs/example.yaml", "runs/cards/smolvlm2-2b.yaml"):
        assert (tmp_path / name).read_bytes() == (REPOSITORY / name).read_bytes()


def test_init_without_dir_writes_into_the_current_folder(tmp_path: Path) -> None:
    result = run_panel("init", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "panel.toml").is_file() and (tmp_path / "runs" / "example.yaml").is_file()
    assert result.stdout.strip().splitlines()[-1] == "next: panel review runs/example.yaml"


def test_init_without_the_embedded_model_says_to_set_it_up_first(tmp_path: Path) -> None:
    hide = "import sys; sys.modules['llama_cpp'] = None; from panel.cli import main; main()"
    result = subprocess.run(
        [sys.executable, "-c", hide, "init", "demo"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        env=dict(os.environ, COLUMNS="200"),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == (
        "next: panel setup embedded (once, or set an endpoint in "
        "panel.toml), then cd demo && panel review runs/example.yaml"
    )


def test_init_makes_a_dir_that_does_not_exist_with_its_parents(tmp_path: Path) -> None:
    written = init_project(tmp_path / "a" / "b")
    assert (tmp_path / "a" / "b" / "panel.toml").is_file()
    assert {str(p) for p in written} == tree(tmp_path / "a" / "b")


def test_init_refuses_to_overwrite_and_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "system.j2").write_text("mine", encoding="utf-8")
    result = run_panel("init", ".", cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "prompts/system.j2 already exists" in lines[0]
    assert tree(tmp_path) == {"prompts/system.j2"}
    assert (tmp_path / "prompts" / "system.j2").read_text(encoding="utf-8") == "mine"


def test_init_twice_names_the_first_existing_file(tmp_path: Path) -> None:
    init_project(tmp_path)
    with pytest.raises(ScaffoldError, match=r"panel\.toml already exists"):
        init_project(tmp_path)


def test_init_refuses_a_file_where_a_folder_goes_and_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "runs").write_text("not a folder", encoding="utf-8")
    with pytest.raises(ScaffoldError, match="runs is a file"):
        init_project(tmp_path)
    assert tree(tmp_path) == {"runs"}


def test_panel_toml_names_the_embedded_endpoint_and_a_commented_openai_profile() -> None:
    text = next(f.content for f in default_files() if f.path == Path("panel.toml")).decode()
    settings = tomllib.loads(text)
    assert settings["endpoint"] == "embedded" and "openai" not in settings["endpoints"]
    assert settings["paths"]["database"] == "runs/panel.duckdb"
    # A mode set on the default profile would also be sent to an endpoint OPENAI_BASE_URL names.
    assert settings["endpoints"]["embedded"] == {}
    uncommented = tomllib.loads(
        text.replace("# [endpoints.openai]", "[endpoints.openai]")
        .replace("\n# base_url", "\nbase_url")
        .replace("\n# model", "\nmodel")
        .replace("\n# api_key_env", "\napi_key_env")
    )
    assert uncommented["endpoints"]["openai"] == {
        "base_url": "https://api.openai.com/v1",
        "model": "gpt-4o-mini",
        "api_key_env": "OPENAI_API_KEY",
    }


def test_gitignore_keeps_the_database_its_journal_secret_pages_and_logs_out() -> None:
    text = next(f.content for f in default_files() if f.path == Path(".gitignore")).decode()
    for pattern in (
        "runs/*.duckdb",
        "runs/*.duckdb.journal.jsonl",
        "runs/*.duckdb.voter-secret",
        "runs/pages/",
        "runs/logs/",
    ):
        assert pattern in text.splitlines()


def test_the_wheel_ships_every_file_init_copies() -> None:
    """pyproject.toml's package data names each PROJECT_FILES pattern, so a built wheel holds what init copies."""
    package_data = tomllib.loads((REPOSITORY / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"][
        "package-data"
    ]["panel"]
    for pattern, _ in PROJECT_FILES:
        assert f"defaults/{pattern}" in package_data
