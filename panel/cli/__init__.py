"""The `panel` command line; `main` is the installed entry point."""

from panel.cli import editor  # noqa: F401  (each module registers its commands on `app`)
from panel.cli import overrides  # noqa: F401
from panel.cli import maintainer  # noqa: F401
from panel.cli import community  # noqa: F401
from panel.cli import analyst  # noqa: F401
from panel.cli import configuration  # noqa: F401
from panel.cli import project  # noqa: F401
from panel.cli.app import app, main

__all__ = ["app", "main"]
