"""The project: the folder holding panel.toml, found like git finds its repository.

Every command works inside a project; its database, pages and logs live there, never inside the
installed package. `$PANEL_PROJECT` (a folder) overrides the walk up from the working directory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from panel.errors import ProjectNotFound

CONFIG_NAME = "panel.toml"
PROJECT_ENV = "PANEL_PROJECT"


@dataclass(frozen=True)
class Project:
    """A panel project: its root folder and the panel.toml in it (relative paths in the file start at `root`)."""

    root: Path
    config_file: Path

    def path(self, value: str | Path) -> Path:
        """`value` as an absolute path: relative paths are taken from the project root."""
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.root / path


def find_project(start: Path | None = None) -> Project:
    """The project holding `start` (default: the working directory), or the folder `$PANEL_PROJECT` names.

    Walks up from `start` to the nearest folder with a panel.toml. Raises ProjectNotFound (one line naming
    `panel init`) when there is none, or when `$PANEL_PROJECT` names a folder without one.
    """
    override = os.environ.get(PROJECT_ENV)
    if override:
        root = Path(override).expanduser().resolve()
        if not (root / CONFIG_NAME).is_file():
            raise ProjectNotFound(
                f"${PROJECT_ENV} is {override}, which holds no {CONFIG_NAME}: "
                f"fix or unset it, or run `panel init {override}`"
            )
        return Project(root, root / CONFIG_NAME)
    here = (start if start is not None else Path.cwd()).expanduser().resolve()
    for folder in (here, *here.parents):
        if (folder / CONFIG_NAME).is_file():
            return Project(folder, folder / CONFIG_NAME)
    raise ProjectNotFound(
        f"not inside a panel project (no {CONFIG_NAME} here or in any parent folder); run `panel init`"
    )
