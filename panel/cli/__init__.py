"""The `panel` command line; `main` is the installed entry point."""

from panel.cli import (
    analyst,  # noqa: F401
    batch,  # noqa: F401
    community,  # noqa: F401
    configuration,  # noqa: F401
    desk,  # noqa: F401
    editor,  # noqa: F401  (each module registers its commands on `app`)
    labels,  # noqa: F401
    maintainer,  # noqa: F401
    maintainer_probes,  # noqa: F401
    newsletter,  # noqa: F401
    overrides,  # noqa: F401
    project,  # noqa: F401
    versions,  # noqa: F401
)
from panel.cli.app import app, main

__all__ = ["app", "main"]
