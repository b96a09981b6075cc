"""`panel lint`: every persona x template x card rendered without a model; each kind of broken prompt is named."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from panel.config import Settings
from panel.lint import GRAMMAR_BOUND_LIMIT, lint, schema_findings
from panel.verdict import verdict_schema
from tests.helpers import EXAMPLE_RUN, PROJECT_ROOT, run_panel


@pytest.fixture
def folders(tmp_path: Path) -> Settings:
    """Copies of the repo's personas and prompts a test may break, and settings pointing at them."""
    shutil.copytree(PROJECT_ROOT / "personas", tmp_path / "personas")
    shutil.copytree(PROJECT_ROOT / "prompts", tmp_path / "prompts")
    return Settings(personas_dir=tmp_path / "personas", prompts_dir=tmp_path / "prompts", base_url="http://unused")


def edit(path: Path, old: str, new: str) -> None:
    """Replace `old` (which must be there) with `new` in a file."""
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new), encoding="utf-8")


def messages_of(settings: Settings, run_files: list[Path] | None = None) -> list[tuple[str, str]]:
    """(severity, 'where: message') of every finding."""
    report = lint(run_files or [EXAMPLE_RUN], settings)
    return [(f.severity, f"{Path(f.where).name}: {f.message}") for f in report.findings]


def test_shipped_personas_and_templates_lint_clean(folders: Settings) -> None:
    report = lint([EXAMPLE_RUN], folders)
    assert report.findings == []
    # 4 personas x (2 pair directions + 2 sparse-card mixes + 1 all-sparse + 1 canary)
    assert report.renders == 4 * 6
    assert 0 < report.largest_prompt < 4096 - folders.max_tokens


def test_each_broken_template_is_named_even_when_both_are_broken(folders: Settings) -> None:
    edit(folders.prompts_dir / "system.j2", "{{ persona.focus }}", "{{ persona.fokus }}")
    edit(folders.prompts_dir / "user.j2", "{{ first.category | quoted }}", "{{ first.categry }}")
    found = messages_of(folders)
    assert ("error", "system.j2: unknown variable ('dict object' has no attribute 'fokus')") in found
    assert ("error", "user.j2: unknown variable ('dict object' has no attribute 'categry')") in found
    assert len(found) == 2  # one finding per mistake, not one per persona x card


def test_sparse_card_catches_a_field_only_some_cards_have(folders: Settings) -> None:
    edit(folders.prompts_dir / "user.j2", "END SECOND TOOL", "Docs: {{ second.links.docs }}\nEND SECOND TOOL")
    report = lint([EXAMPLE_RUN], folders)
    [finding] = report.errors
    assert "has no attribute 'docs'" in finding.message
    assert any(name in finding.example for name in ("SmolVLM2-2B", "Perplexity Sonar Pro 2 API", "sparse card"))


def test_vendor_text_in_the_system_role_is_an_error_naming_the_persona_file(folders: Settings) -> None:
    skeptic = folders.personas_dir / "skeptic.md"
    skeptic.write_text(
        skeptic.read_text(encoding="utf-8") + "\nUnlike SmolVLM2-2B, most tools fail.\n", encoding="utf-8"
    )
    assert ("error", "skeptic.md: vendor text reaches the system role (name of 'SmolVLM2-2B')") in messages_of(folders)


def test_unquoted_vendor_text_and_missing_delimiters_are_errors(folders: Settings) -> None:
    edit(folders.prompts_dir / "user.j2", "{{ first.description | quoted }}", "{{ first.description }}")
    edit(folders.prompts_dir / "user.j2", "END SECOND TOOL\n", "")
    found = messages_of(folders)
    assert (
        "error",
        "user.j2: vendor text can start a line of its own (tooldescription): render it with the `quoted` filter",
    ) in found
    assert (
        "error",
        "user.j2: the user message needs the lines 'BEGIN FIRST TOOL', 'END FIRST TOOL', 'BEGIN SECOND TOOL' and "
        "'END SECOND TOOL' (or, in the older layout, 'BEGIN TOOL UNDER REVIEW' ... 'END RIVAL TOOL') exactly once "
        "each, each block opened before it is closed",
    ) in found


def test_vendor_text_outside_every_block_is_an_error(folders: Settings) -> None:
    edit(
        folders.prompts_dir / "user.j2",
        "Give your ship-or-skip",
        "About {{ rival.tagline | quoted }}. Give your ship-or-skip",
    )
    assert ("error", "user.j2: rival vendor text appears outside the BEGIN ... END lines of its block") in messages_of(
        folders
    )


def test_sandbox_refuses_a_template_reaching_for_python_internals(folders: Settings) -> None:
    edit(folders.prompts_dir / "user.j2", "Give your", "{{ ''.__class__.__mro__[1].__subclasses__() }} Give your")
    [(severity, message)] = messages_of(folders)
    assert severity == "error" and "user.j2" in message and "unsafe" in message


def test_prompt_over_the_token_budget_is_an_error_per_persona(folders: Settings) -> None:
    report = lint([EXAMPLE_RUN], folders, token_budget=300)
    assert {Path(f.where).name for f in report.errors} == {"builder.md", "skeptic.md", "futurist.md", "business.md"}
    assert all("over the token budget of 300" in f.message for f in report.errors)


def test_lint_command_names_its_prompt_limit_apart_from_the_run_budget() -> None:
    # --token-budget is the run-wide budget of review; lint's limit on one prompt has its own name.
    result = run_panel("lint", str(EXAMPLE_RUN), "--max-prompt-tokens", "300")
    assert result.returncode == 1 and "over the token budget of 300" in result.stdout


def test_prompt_mode_needs_every_schema_key_named_in_the_prompt(folders: Settings) -> None:
    edit(folders.prompts_dir / "system.j2", '"key_points": a list', "key points: a list")
    found = messages_of(folders.with_overrides(mode="prompt"))
    assert found == [
        (
            "error",
            "answer schema in mode prompt: mode prompt sends no schema, but the prompt never "
            'names the key "key_points": describe it in the system template',
        )
    ]
    assert messages_of(folders.with_overrides(mode="json_schema")) == []


def test_llama_grammar_cannot_take_a_long_length_bound() -> None:
    schema = verdict_schema()
    schema["properties"]["review"]["maxLength"] = 3000
    schema["properties"]["headline"]["not"] = {"const": ""}
    findings = schema_findings(schema, "json_object_schema", "")
    assert findings == [
        (
            "warning",
            "mode json_object_schema: llama.cpp ignores not at properties.headline; only pydantic "
            "enforces it (answers get re-asked)",
        ),
        (
            "error",
            "mode json_object_schema: properties.review.maxLength = 3000 becomes a llama.cpp grammar rule "
            f"per unit (limit {GRAMMAR_BOUND_LIMIT}); keep the bound in pydantic only",
        ),
    ]
    assert schema_findings(schema, "json_schema", "") == []
    assert schema_findings(verdict_schema(), "json_object_schema", "") == []


def test_broken_persona_and_card_files_are_findings_not_crashes(folders: Settings, tmp_path: Path) -> None:
    (folders.personas_dir / "builder.md").write_text("---\nid: builder\nname: B\n---\nbrief\n", encoding="utf-8")
    broken_run = tmp_path / "broken.yaml"
    broken_run.write_text("pairs:\n  - [{name: A}, {name: B}]\n", encoding="utf-8")
    found = messages_of(folders, [EXAMPLE_RUN, broken_run])
    assert ("error", "builder.md: front matter field 'title': Field required") in found
    assert any(
        severity == "error" and "broken.yaml" in message and "'category' is missing" in message
        for severity, message in found
    )
    assert len(found) == 2


def test_cli_exit_status_gates_ci(folders: Settings) -> None:
    clean = run_panel(
        "lint", str(EXAMPLE_RUN), "--personas-dir", str(folders.personas_dir), "--prompts-dir", str(folders.prompts_dir)
    )
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "24 renders checked" in clean.stdout and "0 errors" in clean.stdout
    edit(folders.prompts_dir / "user.j2", "{{ tool.name }}", "{{ tool.nam }}")
    broken = run_panel(
        "lint", str(EXAMPLE_RUN), "--personas-dir", str(folders.personas_dir), "--prompts-dir", str(folders.prompts_dir)
    )
    assert broken.returncode == 1
    assert "error" in broken.stdout and "user.j2" in broken.stdout and "has no attribute 'nam'" in broken.stdout
