"""panel: a panel of LLM reviewers judges pairs of AI tools and drafts comparison pages.

The Python API, the names a user needs (see README.md, "Python API"):

    from panel import draft_run, project_settings
    outcome = draft_run("runs/example.yaml", project_settings())  # inside a project (panel init)

draft_run -> DraftOutcome (pipeline.py); Settings and project_settings (config.py); PanelError, the base
of every error a user can hit (errors.py). They are imported when first used, so importing the package (as
every `panel` command does) does not load the model SDK.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "draft_run": "panel.pipeline",
    "DraftOutcome": "panel.pipeline",
    "DraftProgress": "panel.pipeline",
    "Settings": "panel.config",
    "project_settings": "panel.config",
    "PanelError": "panel.errors",
}
__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from panel.config import Settings as Settings
    from panel.config import project_settings as project_settings
    from panel.errors import PanelError as PanelError
    from panel.pipeline import DraftOutcome as DraftOutcome
    from panel.pipeline import DraftProgress as DraftProgress
    from panel.pipeline import draft_run as draft_run


def __getattr__(name: str) -> Any:
    """Import an exported name's module on first use (PEP 562)."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'panel' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
