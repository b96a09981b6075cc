"""How the CLI prints: the two consoles, and the one way text from vendors, models and users reaches them.

Every string printed passes through `strip_hidden` (no escape sequence, control, bidi or zero-width
character reaches the terminal), and is read literally: markup and emoji codes are off. A command that
styles its own words with markup passes `markup=True` and wraps every interpolated value in `markup_text`.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.text import Text

from panel.vendor_text import strip_hidden


class _TerminalConsole(Console):
    """A rich Console whose strings (printed, table cells, titles) lose hidden characters before rendering."""

    def render_str(self, text: str, **options: Any) -> Text:
        """The string as rich Text, with terminal escapes and invisible characters removed first."""
        return super().render_str(strip_hidden(text), **options)


def _console(stderr: bool = False) -> Console:
    # soft_wrap: a long path or progress line stays one line, so it can be copied or grepped.
    # markup/emoji off: a tool named "[/bold]" or an error saying ":x:" prints as written.
    return _TerminalConsole(stderr=stderr, soft_wrap=True, markup=False, emoji=False, highlight=False)


console = _console()
err_console = _console(stderr=True)


def terminal_text(value: object, style: str = "") -> Text:
    """`value` as rich Text for a table cell or print: never read as markup, hidden characters removed."""
    return Text(strip_hidden(str(value)), style=style)


def markup_text(value: object) -> str:
    """`value` safe to interpolate into our own markup (`console.print(..., markup=True)`): hidden characters
    removed, then square brackets escaped (in that order, so no removed character can un-escape a bracket)."""
    return escape(strip_hidden(str(value)))
