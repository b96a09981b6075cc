"""`panel init`: write a ready project folder from the defaults the package ships.

The defaults are package data under panel/defaults/: its personas/, prompts/ and runs/ are links to the
repository's own top-level folders (one copy in git), which the wheel build turns into real files, so
importlib.resources reads the same tree from a checkout, an editable install or a wheel.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

from panel.errors import ScaffoldError

# What a new project holds: (pattern under panel/defaults/, where it goes in the project). pyproject.toml's
# package data names the same patterns (tests/test_scaffold.py checks), so a wheel ships every one of them.
PROJECT_FILES: tuple[tuple[str, str], ...] = (
    ("panel.toml", "panel.toml"),
    ("README.md", "README.md"),
    ("gitignore", ".gitignore"),  # no leading dot in the package: some build tools drop dotfiles
    ("personas/*.md", "personas"),
    ("prompts/*.j2", "prompts"),
    ("runs/example.yaml", "runs/example.yaml"),
    ("runs/example-labels.jsonl", "runs/example-labels.jsonl"),  # the reference page's labels: labels import, compare
    ("runs/cards/*.yaml", "runs/cards"),
)
NEXT_COMMAND = "panel review runs/example.yaml"


@dataclass(frozen=True)
class ProjectFile:
    """One file `panel init` writes: where it goes (relative to the project) and its bytes."""

    path: Path
    content: bytes


def defaults_root() -> Traversable:
    """The package's project defaults (panel/defaults), as importlib.resources sees them."""
    return files("panel") / "defaults"


def default_files() -> list[ProjectFile]:
    """Every file of a new project, in PROJECT_FILES order; raise ScaffoldError when the package lacks one."""
    root, found = defaults_root(), []
    for pattern, target in PROJECT_FILES:
        folder, _, name = pattern.rpartition("/")
        source = root.joinpath(*folder.split("/")) if folder else root
        if "*" in name:
            suffix = name.removeprefix("*")
            entries = sorted(
                (e for e in source.iterdir() if e.is_file() and e.name.endswith(suffix)), key=lambda e: e.name
            )
            found += [ProjectFile(Path(target) / e.name, e.read_bytes()) for e in entries]
            if not entries:
                raise ScaffoldError(f"the installed panel package has no defaults/{pattern}: reinstall panel")
        else:
            entry = source / name
            if not entry.is_file():
                raise ScaffoldError(f"the installed panel package has no defaults/{pattern}: reinstall panel")
            found.append(ProjectFile(Path(target), entry.read_bytes()))
    return found


def init_project(folder: Path) -> list[Path]:
    """Write a new project into `folder` (made if missing); return the paths written, relative to it.

    Raises ScaffoldError naming the first file that already exists; then nothing is written.
    """
    project = default_files()
    for item in project:
        existing = folder / item.path
        if existing.exists() or existing.is_symlink():
            raise ScaffoldError(
                f"{existing} already exists: panel init writes into a folder without "
                "these files (pick another DIR or move it away)"
            )
        for parent in (folder / p for p in item.path.parents):
            if parent.exists() and not parent.is_dir():
                raise ScaffoldError(f"{parent} is a file where panel init puts a folder: pick another DIR")
    try:
        for item in project:
            target = folder / item.path
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "xb") as out:  # "x": never replace a file that appeared since the check
                out.write(item.content)
    except OSError as error:
        raise ScaffoldError(f"cannot write the project into {folder}: {error.strerror or error}") from None
    return [item.path for item in project]
