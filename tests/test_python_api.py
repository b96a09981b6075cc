"""The Python API as the README shows it: the example runs as written against the loopback fake."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import panel
from panel.scaffold import init_project
from tests.fake_openai import FakeOpenAI
from tests.helpers import PROJECT_ROOT


def readme_python_example() -> str:
    """The one Python block of the README's "Python API" section."""
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Python API", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1, "the Python API section should hold exactly one Python example"
    return blocks[0]


def test_the_readme_example_drafts_the_example_run_against_the_fake(
    fake: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    init_project(tmp_path)  # the project `panel init` writes: the example run, personas, prompts, panel.toml
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
    exec(compile(readme_python_example(), "README.md", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    assert "finished: 8 asked, 0 cached, 9 requests" in printed  # 8 verdicts and the one pair's summary
    assert sorted(printed[:8]) == sorted(["builder", "business", "futurist", "skeptic"] * 2)
    assert printed[8] == "chair"  # on_answer sees the chair's answer after the reviewers'
    pages = [Path(line.removeprefix("page: ")) for line in printed if line.startswith("page: ")]
    assert len(pages) == 1 and pages[0].is_relative_to(tmp_path / "drafts") and pages[0].is_file()


def test_the_package_exports_the_api_and_importing_it_loads_no_model_sdk() -> None:
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, panel; print('openai' in sys.modules)"],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=60,
        check=True,
    )
    assert loaded.stdout.strip() == "False"
    assert {"draft_run", "DraftOutcome", "Settings", "project_settings", "PanelError"} <= set(panel.__all__)
    assert panel.draft_run.__module__ == "panel.pipeline" and panel.Settings.__module__ == "panel.config"
    with pytest.raises(AttributeError):
        panel.nothing_here  # noqa: B018
