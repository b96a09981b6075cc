"""The suite stays easy to extend: tests/README.md maps every file, and no test module imports another one."""

from __future__ import annotations

import ast
import re
from pathlib import Path

TESTS = Path(__file__).resolve().parent
MAP = TESTS / "README.md"


def python_files() -> set[str]:
    """Every module in tests/ but the package marker."""
    return {path.name for path in TESTS.glob("*.py") if path.name != "__init__.py"}


def mapped_files() -> set[str]:
    """The file names the map gives a row, as `name.py` in its first column."""
    return set(re.findall(r"^\| `([\w.]+\.py)` \|", MAP.read_text(encoding="utf-8"), re.M))


def imported_modules(path: Path) -> list[str]:
    """The modules a file imports, written out in full (a relative import resolved against the tests package)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = "tests." * (node.level > 0) + (node.module or "")
            found += [base] if node.module else [f"{base}{alias.name}" for alias in node.names]
    return found


def test_every_file_in_tests_has_a_row_in_the_map_and_every_row_a_file() -> None:
    files, mapped = python_files(), mapped_files()
    assert not files - mapped, f"add a row to tests/README.md for: {', '.join(sorted(files - mapped))}"
    assert not mapped - files, f"tests/README.md lists files that are gone: {', '.join(sorted(mapped - files))}"


def test_no_test_module_imports_another_test_module_or_conftest() -> None:
    offenders = {}
    for path in sorted(TESTS.glob("*.py")):
        bad = [
            name
            for name in imported_modules(path)
            if re.match(r"tests\.(test_\w+|conftest)(\.|$)", name) and name != f"tests.{path.stem}"
        ]
        if bad:
            offenders[path.name] = bad
    assert offenders == {}, "move what they share into a helper module (tests/README.md lists them)"


def test_the_import_check_sees_absolute_relative_and_nested_imports(tmp_path: Path) -> None:
    module = tmp_path / "test_example.py"
    module.write_text(
        "from tests.test_cli import run_panel\nfrom . import test_serve\nfrom .conftest import X\n"
        "def f():\n    import tests.test_page\n",
        encoding="utf-8",
    )
    assert imported_modules(module) == ["tests.test_cli", "tests.test_serve", "tests.conftest", "tests.test_page"]
