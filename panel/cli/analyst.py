"""Analysts' commands: read-only SQL over the verdict history, and Parquet/CSV exports of every table and view."""

from __future__ import annotations

import csv
import datetime
import decimal
import json
import re
import sys
import uuid
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.cells import cell_len
from rich.table import Table
from rich.text import Text

from panel.cli.app import DbOption, app, console, make_settings
from panel.cli.terminal import terminal_text
from panel.store import LOCK_RETRY_S
from panel.vendor_text import HIDDEN_CHARACTER, strip_hidden
from panel.warehouse import QUERY_TIMEOUT_S, QueryResult, export, run_query

TABLE_ROWS = 1000  # a terminal table beyond this is unreadable; csv and json print everything
# A table column narrower than its values folds them, but never below this many cells: below it `panel sql`
# prints the rows vertically instead (18 columns squeezed into 80 are one character each).
READABLE_WIDTH = 12

WaitOption = Annotated[
    float, typer.Option("--wait", min=0, help="Seconds to wait while a running review holds the database for a write.")
]


class SqlFormat(str, Enum):
    """How `panel sql` prints rows (default: a table, or vertical when it is too wide, on a terminal; else CSV)."""

    table = "table"
    vertical = "vertical"
    csv = "csv"
    json = "json"


class ExportFormat(str, Enum):
    """The file format `panel export` writes."""

    parquet = "parquet"
    csv = "csv"


@app.command("sql")
def sql_command(
    query: Annotated[str, typer.Argument(help="One SELECT (or EXPLAIN) statement; see docs/schema.md.")],
    output: Annotated[
        Optional[SqlFormat],
        typer.Option(
            "--format",
            help=(
                "table, vertical (one `column: value` line each, record by record), csv or json. Default: on a "
                "terminal a table, or vertical when the table would not fit its width; piped or redirected, csv."
            ),
        ),
    ] = None,
    timeout: Annotated[
        float,
        typer.Option(
            min=0.1,
            help="Cancel the query after this many seconds (meanwhile a running review keeps its answers "
            "in its journal and stores them once the query ends).",
        ),
    ] = QUERY_TIMEOUT_S,
    wait: WaitOption = LOCK_RETRY_S,
    db: DbOption = None,
) -> None:
    """Run one read-only SQL query over the verdict history and print the rows (times in UTC).

    Works while a review is writing. Only SELECT and EXPLAIN run; file access is off. Views: docs/schema.md.

    Example: panel sql "SELECT persona_id, persona_version, ship_rate FROM persona_by_version"
    """
    result = run_query(make_settings(db).db_path, query, timeout_s=timeout, wait_s=wait)
    if output is None:
        output = SqlFormat.table if console.is_terminal else SqlFormat.csv
        if output is SqlFormat.table and not _fits(result, console.width):
            output = SqlFormat.vertical
    if output is SqlFormat.csv:
        _print_csv(result)
    elif output is SqlFormat.json:
        _print_json(result)
    elif output is SqlFormat.vertical:
        _print_vertical(result)
    else:
        _print_table(result)


@app.command("export")
def export_command(
    file_format: Annotated[ExportFormat, typer.Option("--format", help="parquet or csv.")] = ExportFormat.parquet,
    out: Annotated[
        Optional[Path],
        typer.Option("--out", help="Folder for one file per table and view (default runs/export in the project)."),
    ] = None,
    wait: WaitOption = LOCK_RETRY_S,
    db: DbOption = None,
) -> None:
    """Write every table and view of the panel database to one Parquet or CSV file each.

    All files come from one snapshot (a quick file copy), so a running review waits only for the copy.

    Example: panel export --format parquet --out runs/export
    """
    settings = make_settings(db)
    out = out or settings.runs_dir / "export"
    written = export(settings.db_path, out, file_format.value, wait_s=wait)
    table = Table(title=f"Exported {len(written)} tables and views to {out}")
    table.add_column("name")
    table.add_column("kind")
    table.add_column("rows", justify="right")
    table.add_column("file")
    for item in written:
        table.add_row(terminal_text(item.name), item.kind, f"{item.rows:,}", terminal_text(item.path))
    console.print(table)


def _widths(result: QueryResult) -> list[int]:
    """Each column's natural width in terminal cells: its widest line of header or shown value."""
    widths = [_text_width(terminal_text(column)) for column in result.columns]
    for row in result.rows[:TABLE_ROWS]:
        widths = [max(width, _text_width(_cell(value))) for width, value in zip(widths, row)]
    return widths


def _text_width(text: Text) -> int:
    return max((cell_len(line) for line in text.plain.splitlines()), default=0)


def _readable(widths: list[int]) -> list[int]:
    """The width each column may not be squeezed below: its whole width up to READABLE_WIDTH (then it folds)."""
    return [min(width, READABLE_WIDTH) for width in widths]


def _fits(result: QueryResult, width: int) -> bool:
    """True when a table gives every column its readable width within `width` (a cell's border and padding: 3)."""
    return sum(_readable(_widths(result))) + 3 * len(result.columns) + 1 <= width


def _print_table(result: QueryResult) -> None:
    table = Table(show_lines=False)
    for column, least in zip(result.columns, _readable(_widths(result))):
        table.add_column(terminal_text(column), overflow="fold", min_width=least)
    for row in result.rows[:TABLE_ROWS]:
        table.add_row(*(_cell(value) for value in row))
    console.print(table)
    _print_count(result)


def _print_vertical(result: QueryResult) -> None:
    """One record at a time, a `column: value` line per column (psql's \\x), for rows too wide for a table."""
    names = [strip_hidden(column) for column in result.columns]
    indent = max((cell_len(name) for name in names), default=0) + 2
    shown = result.rows[:TABLE_ROWS]
    for number, row in enumerate(shown, 1):
        console.print(f"-[ record {number} of {len(result.rows):,} ]", style="dim")
        for name, value in zip(names, row):
            line = Text(f"{name}:".ljust(indent))
            lines = _cell(value).split("\n")  # a multi-line value keeps its lines, each indented under the first
            for index, part in enumerate(lines):
                line.append_text(part if index == 0 else Text("\n" + " " * indent).append_text(part))
            console.print(line)
    _print_count(result)


def _print_count(result: QueryResult) -> None:
    total = len(result.rows)
    hidden = f" ({total - TABLE_ROWS:,} not shown: add LIMIT or use --format csv)" if total > TABLE_ROWS else ""
    console.print(f"{total:,} row{'s' if total != 1 else ''}{hidden}")


def _cell(value: Any) -> Text:
    # Never markup, no escape sequences: tool names and reviews are vendor and model text.
    if value is None:
        return terminal_text("NULL", style="dim")
    if isinstance(value, float):
        return terminal_text(f"{value:.6g}")  # csv and json keep full precision
    return terminal_text(value)


def _print_csv(result: QueryResult) -> None:
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow([strip_hidden(column) for column in result.columns])
    for row in result.rows:
        writer.writerow(["" if value is None else _csv_value(value) for value in row])


def _csv_value(value: Any) -> Any:
    # CSV has no escape for a control character: like a page, it drops them (the JSON output keeps them).
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (list, dict)):
        return strip_hidden(json.dumps(value, default=_json_value, ensure_ascii=False))
    if isinstance(value, str):
        return strip_hidden(value)
    return value


def _print_json(result: QueryResult) -> None:
    text = json.dumps(
        [dict(zip(result.columns, row)) for row in result.rows], default=_json_value, ensure_ascii=False, indent=1
    )
    # json escapes C0 controls itself but passes DEL, C1 and bidi/zero-width characters raw: write those as
    # \u escapes too, so the terminal sees none of them and json.loads still gives back the exact value.
    print(HIDDEN_CHARACTER.sub(_json_escape, text))


def _json_escape(found: re.Match[str]) -> str:
    code = ord(found.group())
    if code > 0xFFFF:  # JSON writes an astral character as its UTF-16 surrogate pair
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
    return f"\\u{code:04x}"


def _json_value(value: Any) -> Any:
    """JSON for what json cannot encode itself: times as ISO 8601, decimals as numbers, the rest as text."""
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    if isinstance(value, uuid.UUID):
        return str(value)
    return str(value)
